"""The admin site: Django's, with the site's login lockouts and the ids in its own URLs checked
as ObjectIds by the resolver."""

from django.contrib import admin
from django.contrib.contenttypes import views as contenttype_views
from django.urls import path

from accounts.forms import ThrottledAdminAuthenticationForm
from imageclass import converters  # noqa: F401  (registers <objectid:...>)


class AdminSite(admin.AdminSite):
    login_form = ThrottledAdminAuthenticationForm  # the site's lockout rules (accounts.throttle)

    def get_urls(self):
        # "View on site" looks both ids up as they come: on this backend an id that is no
        # ObjectId raises ValidationError (a 500), where the resolver's 404 is the answer.
        view_on_site = path(
            "r/<objectid:content_type_id>/<objectid:object_id>/",
            self.admin_view(contenttype_views.shortcut),
            name="view_on_site",
        )
        return [
            view_on_site if getattr(url, "name", None) == "view_on_site" else url
            for url in super().get_urls()
        ]

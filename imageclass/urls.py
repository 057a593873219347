from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from imageclass import health


def favicon(request):
    # Resolved per request: with the manifest storage, static() needs collectstatic's manifest,
    # which a management command run before collectstatic does not have.
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("imageclass.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (?script): no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("accounts/", include("accounts.urls")),
    path("", include("classifier.urls")),
]

handler400 = "imageclass.errors.bad_request"
handler403 = "imageclass.errors.permission_denied"
handler404 = "imageclass.errors.page_not_found"
handler500 = "imageclass.errors.server_error"

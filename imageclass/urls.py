from django.contrib import admin
from django.urls import include, path

from imageclass import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("imageclass.api_urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("classifier.urls")),
]

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.apps import AuthConfig
from django.contrib.contenttypes.apps import ContentTypesConfig

OBJECT_ID = "django_mongodb_backend.fields.ObjectIdAutoField"


class MongoAdminConfig(AdminConfig):
    default_auto_field = OBJECT_ID
    default_site = "imageclass.admin_site.AdminSite"


class MongoAuthConfig(AuthConfig):
    default_auto_field = OBJECT_ID


class MongoContentTypesConfig(ContentTypesConfig):
    default_auto_field = OBJECT_ID


class ImageClassConfig(AppConfig):
    name = "imageclass"
    default_auto_field = OBJECT_ID

    def ready(self):
        from imageclass import checks  # noqa: F401  (registers the system checks)

from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
    name = "classifier"

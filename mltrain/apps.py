from django.apps import AppConfig


class MltrainConfig(AppConfig):
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
    name = "mltrain"
    verbose_name = "Model training"

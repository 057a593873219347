"""System checks for configuration that Django itself does not verify."""

import os

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning, register

OBJECT_ID = "django_mongodb_backend.fields.ObjectIdAutoField"


@register()
def check_object_id_primary_keys(app_configs, **kwargs):
    """Every model must use ObjectIdAutoField: an integer auto field silently breaks on MongoDB
    (for example `annotate(Count("id"))` returns 0)."""
    errors = []
    for model in apps.get_models():
        pk = model._meta.pk
        if (
            pk.get_internal_type().endswith("AutoField")
            and pk.__class__.__name__ != "ObjectIdAutoField"
        ):
            errors.append(
                Error(
                    f"{model._meta.label} has a {pk.__class__.__name__} primary key.",
                    hint=f'Set default_auto_field = "{OBJECT_ID}" in its app config.',
                    id="imageclass.E001",
                )
            )
    return errors


@register(deploy=True)
def check_secret_key_from_environment(app_configs, **kwargs):
    if not os.environ.get("SECRET_KEY"):
        return [
            Warning(
                "SECRET_KEY is not set: a key generated into var/secret_key is in use.",
                hint="Set SECRET_KEY in the environment in production.",
                id="imageclass.W001",
            )
        ]
    return []


@register()
def check_password_hasher(app_configs, **kwargs):
    if not settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher"):
        return [Error("Argon2 must be the first password hasher.", id="imageclass.E002")]
    return []


@register(deploy=True)
def check_production_services(app_configs, **kwargs):
    """Production runs several containers: files must live in shared storage (jobs do: REDIS_URL
    is required there)."""
    if not settings.PRODUCTION or settings.S3_ENDPOINT_URL:
        return []
    return [
        Warning(
            "Images and models are stored on this container's disk.",
            hint="Set S3_ENDPOINT_URL and the S3_* credentials (MinIO or S3).",
            id="imageclass.W002",
        )
    ]

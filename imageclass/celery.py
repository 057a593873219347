"""The Celery app. Workers run `celery -A imageclass worker`; the web process only sends."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")

app = Celery("imageclass")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

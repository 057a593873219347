# Load the Celery app with Django so that tasks' .delay() uses its configuration.
from imageclass.celery import app as celery_app

__all__ = ("celery_app",)

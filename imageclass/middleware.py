"""A backing service that is down (the database, the object store, the broker) gets a clear
503 with Retry-After, never a 500."""

from botocore.exceptions import BotoCoreError
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class ServiceUnavailable(Exception):
    """A service the request needs is down; nothing of what it asked for was kept."""


# Unreachable services only: an IntegrityError or a bad query stays a bug (a 500), not a 503.
UNAVAILABLE = (
    ConnectionFailure,
    OperationalError,
    InterfaceError,
    BotoCoreError,
    RedisConnectionError,
    RedisTimeoutError,
    ServiceUnavailable,
)
RETRY_AFTER_SECONDS = 30
MESSAGE = (
    "ImageClass is temporarily unavailable (a backing service is down). Please try again shortly."
)


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        # django-mongodb-backend raises pymongo's errors as a plain DatabaseError; the cause says
        # whether the server was unreachable.
        if not isinstance(exception, UNAVAILABLE) and not isinstance(
            exception.__cause__, ConnectionFailure
        ):
            return None
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": MESSAGE}, status=503)
        else:
            # Rendered without the request: context processors would ask the database again.
            response = HttpResponse(render_to_string("503.html", {"message": MESSAGE}), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

"""A backing service that is down (the database, the object store) gets a clear 503 with
Retry-After, never a 500."""

from botocore.exceptions import BotoCoreError
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from pymongo.errors import ConnectionFailure

UNAVAILABLE = (ConnectionFailure, DatabaseError, BotoCoreError)
RETRY_AFTER_SECONDS = 30
MESSAGE = "ImageClass is temporarily unavailable (a backing service is down). Please try again shortly."


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, UNAVAILABLE):
            return None
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": MESSAGE}, status=503)
        else:
            # Rendered without the request: context processors would ask the database again.
            response = HttpResponse(render_to_string("503.html", {"message": MESSAGE}), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

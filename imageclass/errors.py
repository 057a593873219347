"""Error pages for what Django answers before (or outside) DRF: an unknown URL, a request the
request parser refused (too many files or fields, a body over the size limit, a bad Host), a
crash. Under /api/ they are JSON `{"detail": ...}` like every other API error; elsewhere
Django's own pages."""

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.views import defaults

MESSAGES = {
    TooManyFilesSent: "Too many files in one request.",
    TooManyFieldsSent: "Too many fields in one request.",
    RequestDataTooBig: "The request body is too large.",
}


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    if not is_api(request):
        return defaults.bad_request(request, exception)
    for kind, message in MESSAGES.items():
        if isinstance(exception, kind):
            return JsonResponse(
                {"detail": message}, status=413 if kind is RequestDataTooBig else 400
            )
    return JsonResponse({"detail": "Bad request."}, status=400)


def permission_denied(request, exception=None):
    if not is_api(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(
        {"detail": "You do not have permission to perform this action."}, status=403
    )


def page_not_found(request, exception=None):
    if not is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    if not is_api(request):
        return defaults.server_error(request)
    return JsonResponse({"detail": "Internal server error."}, status=500)

"""Who may see, delete and correct a result, and the responses that serve its files: the web
views, the API and the admin all answer through these."""

from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpResponse, JsonResponse

from accounts.models import Share
from classifier import dispatch
from classifier.models import Classification
from classifier.validation import ALLOWED_FORMATS
from imageclass.storage import STORAGE_ERRORS


def can_view(request, classification: Classification) -> bool:
    """The owner, a user the owner shares their history with, or for an anonymous result the
    session that sent it."""
    if classification.owner_id is None:
        session_key = classification.session_key
        return bool(session_key) and session_key == request.session.session_key
    if not request.user.is_authenticated:
        return False
    return classification.owner_id == request.user.pk or Share.allows(
        classification.owner, request.user
    )


def is_owner(request, classification: Classification) -> bool:
    """Deleting a result and correcting its label are its owner's alone."""
    return classification.owner_id is not None and classification.owner_id == request.user.pk


def visible_classification(request, pk) -> Classification:
    """The classification if the requester may see it; 404 otherwise, whether it exists or not."""
    try:
        classification = Classification.by_pk(pk)
    except (Classification.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404 from None  # an id that is no ObjectId at all included
    if not can_view(request, classification):
        raise Http404
    return classification


def trashed_classification(request, pk) -> Classification:
    """A result of the requester's own trash; 404 otherwise, whether it exists or not."""
    try:
        return Classification.in_trash(request.user, pk)
    except (Classification.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404 from None


def stored_file_response(storage, key, content_type, download_as=None):
    """Stream a stored file (as an attachment named `download_as` if given): 404 when it is
    gone, 503 when the storage is unreachable."""
    try:
        stored = storage.open(key, "rb")
    except FileNotFoundError:
        raise Http404("The file is no longer stored.") from None
    except STORAGE_ERRORS:
        return HttpResponse(
            "Image storage is unavailable; please try again shortly.",
            status=503,
            content_type="text/plain",
        )
    response = FileResponse(
        stored,
        content_type=content_type,
        as_attachment=bool(download_as),
        filename=download_as or "",
    )
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


def image_response(classification):
    return stored_file_response(
        storages["default"], classification.image_key, ALLOWED_FORMATS[classification.format][1]
    )


def thumbnail_response(classification):
    """The worker's small JPEG; the original until the worker has made it."""
    if classification.thumbnail_key:
        return stored_file_response(storages["default"], classification.thumbnail_key, "image/jpeg")
    return image_response(classification)


def heatmap_response(classification):
    """The Grad-CAM overlay (200, JPEG); 202 while a worker makes it (ask again after
    Retry-After seconds); 409 with the reason when there is none to make."""
    state = dispatch.request_heatmap(classification)
    if state == Classification.Heatmap.READY:
        return stored_file_response(storages["default"], classification.heatmap_key, "image/jpeg")
    if state == Classification.Heatmap.PENDING:
        response = JsonResponse(
            {"status": state, "detail": "The heatmap is being made."}, status=202
        )
        response["Retry-After"] = "1"
        return response
    detail = classification.heatmap_error or (
        "The classification has not finished."
        if not classification.is_finished
        else "A failed classification has nothing to explain."
    )
    return JsonResponse({"status": state, "detail": detail}, status=409)

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from classifier.forms import MAX_FILES, UploadForm
from classifier.models import BrokerUnavailable, Classification, ModelVersion
from classifier.validation import ALLOWED_FORMATS


def visible_classification(request, pk) -> Classification:
    try:
        return get_object_or_404(Classification.objects.visible_to(request), pk=pk)
    except (ValidationError, ValueError, TypeError):  # not an ObjectId: no such object
        raise Http404 from None


@require_http_methods(["GET", "POST"])
def home(request):
    max_files = MAX_FILES if request.user.is_authenticated else 1
    posted = request.method == "POST"
    form = UploadForm(request.POST if posted else None, request.FILES if posted else None, max_files=max_files)
    if posted and form.is_valid():
        if not request.user.is_authenticated and not request.session.session_key:
            request.session.save()  # anonymous results belong to this session
        owner = request.user if request.user.is_authenticated else None
        created = []
        try:
            for data, fields in form.submissions():
                created.append(Classification.submit(data, owner=owner, session_key=request.session.session_key, **fields))
        except BrokerUnavailable as exc:
            messages.error(request, str(exc))
            return render(request, "classifier/home.html", home_context(form, created), status=503)
        if len(created) == 1:
            return redirect("result", pk=created[0].pk)
        messages.success(request, f"{len(created)} images sent for classification.")
        return redirect("result", pk=created[0].pk)
    return render(request, "classifier/home.html", home_context(form), status=400 if form.errors else 200)


def home_context(form, created=()):
    return {
        "form": form,
        "model": ModelVersion.active(),
        "max_files": form.max_files,
        "max_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
        "formats": ", ".join(f.title() if f != "JPEG" else f for f in ALLOWED_FORMATS),
        "created": created,
    }


@require_GET
def result(request, pk):
    classification = visible_classification(request, pk)
    return render(request, "classifier/result.html", {"c": classification, "payload": classification.status_payload()})


@never_cache
@require_GET
def result_status(request, pk):
    return JsonResponse(visible_classification(request, pk).status_payload())


@require_GET
def result_image(request, pk):
    classification = visible_classification(request, pk)
    try:
        stored = storages["default"].open(classification.image_key, "rb")
    except OSError:
        raise Http404("The image is no longer stored.") from None
    response = FileResponse(stored, content_type=ALLOWED_FORMATS[classification.format][1])
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response

from bson import ObjectId
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Share
from classifier import access, dispatch, history
from classifier.forms import MAX_FILES, UploadForm
from classifier.history import HistoryFilter
from classifier.models import Classification, ModelVersion
from classifier.validation import FORMAT_LIST
from imageclass.middleware import RETRY_AFTER_SECONDS, ServiceUnavailable


def history_page(request, owner, *, read_only):
    filters = HistoryFilter(request.GET)
    results = history.History(owner, filters)
    filters.offer_labels(results.labels())
    items, older, newer = results.page(request.GET.get("older", ""), request.GET.get("newer", ""))
    matching, more = results.count()
    # A search that no index holds stops at its window: say so, or a short page reads as the end.
    further = "Newer" if request.GET.get("newer") else "Older"
    cut_short = (
        results.windowed
        and (newer if further == "Newer" else older)
        and len(items) < history.PAGE_SIZE
    )
    query = request.GET.copy()
    for key in ("older", "newer"):
        query.pop(key, None)
    return render(
        request,
        "classifier/history.html",
        {
            "owner": owner,
            "read_only": read_only,
            "filters": filters,
            "items": items,
            "older": older,
            "newer": newer,
            "query": query.urlencode(),
            "searched": results.scan_window if cut_short else None,
            "further": further,
            "selectable": not read_only,
            "matching": matching,
            "more": more,
            "windowed": results.windowed,
            "window": results.scan_window,
            "filtered": bool(filters.is_valid() and any(filters.cleaned_data.values())),
        },
    )


@login_required
@require_GET
def my_history(request):
    return history_page(request, request.user, read_only=False)


@login_required
@require_GET
def shared_with_me(request):
    shares = Share.objects.filter(grantee=request.user).select_related("owner")
    return render(request, "classifier/shared.html", {"shares": shares})


@login_required
@require_GET
def shared_history(request, username):
    owner = Share.sharing_owner(username, request.user)
    if owner is None:
        raise Http404
    return history_page(request, owner, read_only=True)


@login_required
@require_POST
def delete_many(request):
    """Move the ticked results to the trash, back to the history page with its filters."""
    back = reverse("history") + (f"?{request.POST['query']}" if request.POST.get("query") else "")
    ids = valid_ids(request.POST.getlist("ids"))
    if not ids:
        messages.info(request, "Nothing was deleted: tick the results to delete first.")
        return redirect(back)
    # By id, the owner checked by the conditional move: the ORM's owner-and-ids filter is an
    # $and, which the embedded engine answers by scanning every result.
    moved = sum(found.move_to_trash(request.user) for found in Classification.by_pks(ids))
    messages.success(
        request,
        f"Moved {moved} result{'s' if moved != 1 else ''} to the trash "
        f"(restorable for {settings.TRASH_DAYS} days).",
    )
    return redirect(back)


@login_required
@require_POST
def delete_one(request, pk):
    classification = access.visible_classification(request, pk)
    if not access.is_owner(request, classification):
        raise Http404
    classification.move_to_trash(request.user)
    messages.success(
        request,
        f"The result was moved to the trash (restorable for {settings.TRASH_DAYS} days).",
    )
    return redirect("history")


@login_required
@require_GET
def trash(request):
    return render(
        request,
        "classifier/trash.html",
        {"items": Classification.trash_of(request.user), "days": settings.TRASH_DAYS},
    )


@login_required
@require_GET
def trash_thumbnail(request, pk):
    return access.thumbnail_response(access.trashed_classification(request, pk))


@login_required
@require_POST
def trash_restore(request, pk):
    classification = access.trashed_classification(request, pk)
    classification.restore(request.user)
    messages.success(
        request, f"{classification.original_filename or 'The result'} is back in your history."
    )
    return redirect("trash")


@login_required
@require_POST
def trash_purge(request, pk):
    access.trashed_classification(request, pk).delete()
    messages.success(request, "The result and its image were deleted for good.")
    return redirect("trash")


@login_required
@require_POST
def trash_empty(request):
    purged = Classification.empty_trash(request.user)
    messages.success(
        request,
        f"The trash was emptied: {purged} result{'s' if purged != 1 else ''} deleted for good.",
    )
    return redirect("trash")


@require_POST
def feedback(request, pk):
    """The owner says the model was wrong and gives the right label (or takes it back)."""
    classification = access.visible_classification(request, pk)
    if not access.is_owner(request, classification):
        raise Http404
    try:
        classification.correct(None if "clear" in request.POST else request.POST.get("label", ""))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Thank you: your correction was recorded."
            if classification.corrected_label
            else "Your correction was removed.",
        )
    return redirect("result", classification.pk)


@login_required
@require_GET
def export(request, fmt):
    if fmt not in ("csv", "json"):
        raise Http404
    results = history.History(request.user, HistoryFilter(request.GET))
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        response = StreamingHttpResponse(
            history.export_csv(results), content_type="text/csv; charset=utf-8"
        )
    else:
        response = StreamingHttpResponse(
            history.export_json(results), content_type="application/json"
        )
    response["Content-Disposition"] = f'attachment; filename="imageclass-history-{stamp}.{fmt}"'
    return response


@require_http_methods(["GET", "POST"])
def home(request):
    max_files = MAX_FILES if request.user.is_authenticated else 1
    posted = request.method == "POST"
    form = UploadForm(
        request.POST if posted else None, request.FILES if posted else None, max_files=max_files
    )
    if posted and form.is_valid():
        if not request.user.is_authenticated and not request.session.session_key:
            request.session.save()  # anonymous results belong to this session
        owner = request.user if request.user.is_authenticated else None
        created = []
        try:
            for data, fields in form.submissions():
                created.append(
                    dispatch.submit(
                        data, owner=owner, session_key=request.session.session_key, **fields
                    )
                )
        except ServiceUnavailable as exc:
            messages.error(request, str(exc))
            response = render(
                request, "classifier/home.html", home_context(form, created), status=503
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        for refused in form.refused:
            messages.warning(request, f"{refused.name} was not sent: {refused.refusal}")
        if len(created) == 1:
            return redirect("result", pk=created[0].pk)
        return redirect(f"{reverse('batch')}?ids={','.join(str(c.pk) for c in created)}")
    return render(
        request, "classifier/home.html", home_context(form), status=400 if form.errors else 200
    )


def home_context(form, created=()):
    return {
        "form": form,
        "model": ModelVersion.active(),
        "max_files": form.max_files,
        "max_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
        "formats": FORMAT_LIST,
        "created": created,
    }


@require_GET
def result(request, pk):
    classification = access.visible_classification(request, pk)
    return render(
        request,
        "classifier/result.html",
        {
            "c": classification,
            "payload": classification.status_payload(),
            "can_delete": access.is_owner(request, classification),
            "can_correct": access.is_owner(request, classification),
        },
    )


def valid_ids(values) -> list[str]:
    """The values that are result ids, a page of cards at most."""
    return [i for i in values if ObjectId.is_valid(i)][: history.PAGE_SIZE * 4]


def requested_ids(request) -> list[str]:
    """The ids of `?ids=a,b,...`."""
    return valid_ids(request.GET.get("ids", "").split(","))


@require_GET
def batch(request):
    """One upload's results as a grid that fills in as they end (static/js/live-cards.js)."""
    order = requested_ids(request)
    found = {str(c.pk): c for c in Classification.by_pks(order) if access.can_view(request, c)}
    items = [found[i] for i in order if i in found]
    return render(
        request,
        "classifier/batch.html",
        {"items": items, "done": sum(c.is_finished for c in items)},
    )


@never_cache
@require_GET
def results_status(request):
    """Where several results stand, in one answer for a page's unfinished cards: each with its
    card's status rendered by the template the page itself used."""
    visible = [
        c for c in Classification.by_pks(requested_ids(request)) if access.can_view(request, c)
    ]
    return JsonResponse(
        {
            "results": [
                {
                    "id": str(c.pk),
                    "status": c.status,
                    "finished": c.is_finished,
                    "html": render_to_string("classifier/_card_status.html", {"c": c}),
                }
                for c in visible
            ]
        }
    )


@never_cache
@require_GET
def result_status(request, pk):
    return JsonResponse(access.visible_classification(request, pk).status_payload())


@require_GET
def result_image(request, pk):
    classification = access.visible_classification(request, pk)
    return access.image_response(classification)


@require_GET
def result_thumbnail(request, pk):
    return access.thumbnail_response(access.visible_classification(request, pk))


@never_cache
@require_GET
def result_heatmap(request, pk):
    return access.heatmap_response(access.visible_classification(request, pk))

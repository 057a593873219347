"""Browsing a history: filters, keyset pagination and export, shared by the web views (and
the API later). Every query starts from one owner's results, so the (owner, ...) indexes back it."""

import base64
import binascii
import csv
import io
import json
from datetime import datetime, time

from bson import ObjectId
from bson.errors import InvalidId
from django import forms
from django.db.models import Q
from django.utils import timezone

from classifier.models import Classification

PAGE_SIZE = 24
EXPORT_FIELDS = (
    "id", "created_at", "status", "original_filename", "source_url", "top_label", "top_probability",
    "model_version", "format", "width", "height", "error",
)  # fmt: skip


class HistoryFilter(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Filename contains")
    label = forms.CharField(required=False, max_length=100)
    min_probability = forms.FloatField(required=False, min_value=0, max_value=100, label="Min. probability (%)")
    status = forms.ChoiceField(required=False, choices=[("", "any")] + Classification.Status.choices)
    created_after = forms.DateField(required=False, label="From")
    created_before = forms.DateField(required=False, label="To")
    probability_scale = 100  # the web form takes percentages

    def apply(self, queryset):
        if not self.is_valid():
            return queryset.none()
        data = self.cleaned_data
        if data["q"]:
            queryset = queryset.filter(original_filename__icontains=data["q"])
        if data["label"]:
            queryset = queryset.filter(top_label=data["label"])
        if data["min_probability"] is not None:
            queryset = queryset.filter(top_probability__gte=data["min_probability"] / self.probability_scale)
        if data["status"]:
            queryset = queryset.filter(status=data["status"])
        if data["created_after"]:
            queryset = queryset.filter(created_at__gte=day_start(data["created_after"]))
        if data["created_before"]:
            queryset = queryset.filter(created_at__lt=day_start(data["created_before"]) + timezone.timedelta(days=1))
        return queryset


def day_start(day):
    return timezone.make_aware(datetime.combine(day, time.min))


def encode_cursor(item: Classification) -> str:
    raw = f"{item.created_at.isoformat()}|{item.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str):
    """(created_at, ObjectId) or None for a cursor that is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, pk = raw.split("|")
        return datetime.fromisoformat(created), ObjectId(pk)
    except (ValueError, binascii.Error, InvalidId, UnicodeDecodeError):
        return None


def page(queryset, older_than: str = "", newer_than: str = "", size: int = PAGE_SIZE):
    """One page newest-first, keyed on (created_at, id): stable while new results arrive,
    and as fast deep in the history as at its start. Returns (items, older, newer) cursors."""
    ordered = queryset.order_by("-created_at", "-id")
    if newer_than and (position := decode_cursor(newer_than)):
        created, pk = position
        items = list(
            queryset.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=pk)).order_by("created_at", "id")[: size + 1]
        )
        has_newer = len(items) > size
        items = items[:size][::-1]
        has_older = True
    else:
        if older_than and (position := decode_cursor(older_than)):
            created, pk = position
            ordered = ordered.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
            has_newer = True
        else:
            has_newer = False
        items = list(ordered[: size + 1])
        has_older = len(items) > size
        items = items[:size]
    older = encode_cursor(items[-1]) if items and has_older else ""
    newer = encode_cursor(items[0]) if items and has_newer else ""
    return items, older, newer


def export_row(item: Classification) -> dict:
    return {
        "id": str(item.pk),
        "created_at": item.created_at.isoformat(),
        "status": item.status,
        "original_filename": item.original_filename,
        "source_url": item.source_url,
        "top_label": item.top_label,
        "top_probability": item.top_probability,
        "model_version": item.model_name,
        "format": item.format,
        "width": item.width,
        "height": item.height,
        "error": item.error,
    }


def spreadsheet_safe(value):
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_csv(queryset):
    """CSV lines, streamed: the first byte leaves before the whole history is read."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)

    def flush():
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writeheader()
    yield flush()
    for item in queryset.order_by("-created_at", "-id").iterator(chunk_size=500):
        writer.writerow({k: spreadsheet_safe(v) for k, v in export_row(item).items()})
        yield flush()


def export_json(queryset):
    yield "["
    for index, item in enumerate(queryset.order_by("-created_at", "-id").iterator(chunk_size=500)):
        yield ("," if index else "") + "\n" + json.dumps(export_row(item))
    yield "\n]\n"

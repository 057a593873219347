"""Browsing a history: filters, keyset pagination and export, shared by the web views and the
API. Every query starts from one owner's results, so the (owner, ...) indexes back it."""

import base64
import binascii
import csv
import io
import json
import re
from datetime import UTC, date, datetime, time, timedelta

from bson import ObjectId
from bson.errors import InvalidId
from django import forms
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from pymongo import ASCENDING, DESCENDING

from classifier.labels import display_label
from classifier.models import Classification

PAGE_SIZE = 24
# No index holds these conditions, so a read with them filters the indexed order as it goes:
# a page scans at most SCAN_WINDOW results past its cursor's moment (and the few results created
# at that very moment) and may come back short, with a cursor past them, rather than scan an
# owner's whole history for a rare filename.
SCAN_WINDOW = 5000
UNINDEXED = ("original_filename", "top_probability")
COUNT_LIMIT = 10_000  # a count stops here: "more than 10,000 match"
# Ids below and above every ObjectId: positions before and after all the results of a moment.
FIRST_ID, LAST_ID = ObjectId("0" * 24), ObjectId("f" * 24)
EXPORT_FIELDS = (
    "id",
    "created_at",
    "status",
    "original_filename",
    "source_url",
    "top_label",
    "top_probability",
    "corrected_label",
    "model_version",
    "format",
    "width",
    "height",
    "error",
)


class MomentField(forms.Field):
    """An ISO 8601 day (`2026-01-01`, in the site's time zone) or moment (`2026-01-01T02:00:00+02:00`,
    `...Z`; one without a zone is in the site's), as a mobile client sends either. It cleans to
    a bound in UTC: the day's start, or with `upper` the end of the day or just past the moment,
    so that "$lt" holds everything on or before it. A bound past the calendar's ends (year 1 or
    9999) bounds nothing and cleans to None."""

    default_error_messages = {
        "invalid": "Enter a date (YYYY-MM-DD) or a date and time with its zone (ISO 8601)."
    }

    def __init__(self, *, upper: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.upper = upper

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            moment, day = value, None
        elif isinstance(value, date):
            moment, day = None, value
        else:
            moment, day = parsed(value)
        if moment is None and day is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            if day is not None:
                moment = timezone.make_aware(datetime.combine(day, time.min))
                step = timedelta(days=1)
            else:
                moment = moment if timezone.is_aware(moment) else timezone.make_aware(moment)
                # MongoDB keeps milliseconds: "$lt" the next millisecond is "on or before" it.
                moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
                step = timedelta(milliseconds=1)
            return (moment + step if self.upper else moment).astimezone(UTC)
        except OverflowError:
            return None


def parsed(text: str) -> tuple:
    """(moment, day) from an ISO 8601 date-time or date; (None, None) when it is neither."""
    text = str(text).strip()
    try:
        moment = parse_datetime(text)
        return moment, None if moment else parse_date(text)
    except ValueError:  # well-formed but impossible: month 13, an offset of 25 hours
        return None, None


class DayInput(forms.DateInput):
    """A date picker: the browser shows the reader's own format and sends ISO 8601, the one
    format the filter reads, so "07/12/2026" can never silently mean 12 July."""

    input_type = "date"


class HistoryFilter(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Filename contains")
    label = forms.CharField(
        required=False, max_length=100, help_text="top label equals (case-insensitive)"
    )
    min_probability = forms.FloatField(
        required=False, min_value=0, max_value=100, label="Min. probability (%)"
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "any")] + Classification.Status.choices
    )
    created_after = MomentField(required=False, label="From", widget=DayInput)
    created_before = MomentField(required=False, label="To", upper=True, widget=DayInput)
    probability_scale = 100  # the web form takes percentages

    def offer_labels(self, labels: list[str]):
        """Make the label filter a choice among `labels` (those in the history), as shown on
        pages; a label asked for that is not among them stays offered, and matches nothing."""
        asked = self.data.get("label", "")
        offered = sorted(set(labels) | ({asked} if asked else set()), key=str.lower)
        self.fields["label"].widget = forms.Select(
            choices=[("", "any")] + [(name, display_label(name)) for name in offered]
        )

    def conditions(self) -> dict | None:
        """The filter as MongoDB conditions, one flat condition per field (None when the form
        is invalid: an invalid filter shows nothing)."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        conditions = {}
        if data["q"]:
            conditions["original_filename"] = {"$regex": re.escape(data["q"]), "$options": "i"}
        if data["label"]:
            conditions["top_label"] = data["label"]  # History makes it case-insensitive
        if data["min_probability"] is not None:
            conditions["top_probability"] = {
                "$gte": data["min_probability"] / self.probability_scale
            }
        if data["status"]:
            conditions["status"] = data["status"]
        created = {}
        if data["created_after"]:
            created["$gte"] = stored("created_at", data["created_after"])
        if data["created_before"]:
            created["$lt"] = stored("created_at", data["created_before"])
        if created:
            conditions["created_at"] = created
        return conditions


def stored(name: str, value):
    """`value` of the Classification field `name` as the database holds it."""
    return Classification._meta.get_field(name).get_db_prep_value(value, connection)


def split_conditions(conditions: dict) -> tuple[dict, dict]:
    """(the conditions an index holds, those it does not)."""
    indexed = {name: value for name, value in conditions.items() if name not in UNINDEXED}
    return indexed, {name: value for name, value in conditions.items() if name in UNINDEXED}


def encode_position(created_at: datetime, pk: ObjectId) -> str:
    raw = f"{created_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(item: Classification) -> str:
    return encode_position(item.created_at, item.pk)


def decode_cursor(cursor: str):
    """(created_at, ObjectId) or None for a cursor that is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, pk = raw.split("|")
        return datetime.fromisoformat(created), ObjectId(pk)
    except (ValueError, binascii.Error, InvalidId, UnicodeDecodeError):
        return None


class History:
    """One owner's results that pass a filter, read newest first, in pages or all.

    Read with plain finds, not the ORM: its pipelines put an `$addFields` of the sort keys
    between the `$match` and the `$sort` (MongoDB documents no optimization that moves a sort
    ahead of an `$addFields`, so the order might not come from an index but from sorting the
    whole history) and spell two conditions as `$and` and a keyset position as `$or` (which
    the embedded engine answers by scanning every result). Here the conditions are flat, the
    order is the (owner, ..., created_at, id) indexes' own, and a keyset position is two
    ranges of that order, so every read is an index scan that can stop at the page size; a
    page with unindexed conditions stops after `scan_window` results past its cursor's moment."""

    NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
    OLDEST_FIRST = [("created_at", ASCENDING), ("_id", ASCENDING)]
    scan_window = SCAN_WINDOW

    def __init__(self, owner, filters: HistoryFilter):
        conditions = filters.conditions()
        self.empty = conditions is None
        self.owner = {Classification._meta.get_field("owner").column: owner.pk}
        self.conditions = {**self.owner, **(conditions or {})}
        if "top_label" in self.conditions:
            self.conditions["top_label"] = self.spellings(self.conditions["top_label"])
        self.windowed = any(name in self.conditions for name in UNINDEXED)

    def labels(self) -> list[str]:
        """The top labels in the owner's whole history."""
        return sorted(label for label in self.collection.distinct("top_label", self.owner) if label)

    def spellings(self, label: str):
        """The condition matching `label` whatever its case, as one value of the (owner, top
        label) index wherever the history spells it one way."""
        found = [name for name in self.labels() if name.lower() == label.lower()] or [label]
        return found[0] if len(found) == 1 else {"$in": found}

    def count(self) -> tuple[int, bool]:
        """(how many results match, whether there are more than that): exact up to COUNT_LIMIT
        for indexed conditions; with unindexed ones, among the newest `scan_window` results."""
        if self.empty:
            return 0, False
        if not self.windowed:
            found = self.collection.count_documents(self.conditions, limit=COUNT_LIMIT + 1)
            return min(found, COUNT_LIMIT), found > COUNT_LIMIT
        indexed, unindexed = split_conditions(self.conditions)
        [found] = self.collection.aggregate(
            [
                {"$match": indexed},
                {"$sort": dict(self.NEWEST_FIRST)},
                {"$limit": self.scan_window + 1},
                {
                    "$facet": {
                        "matching": [
                            {"$limit": self.scan_window},
                            {"$match": unindexed},
                            {"$count": "n"},
                        ],
                        "read": [{"$count": "n"}],
                    }
                },
            ]
        )
        matching = found["matching"][0]["n"] if found["matching"] else 0
        read = found["read"][0]["n"] if found["read"] else 0
        return matching, read > self.scan_window

    @property
    def collection(self):
        return connection.database[Classification._meta.db_table]

    def find(self, conditions: dict | None = None, order=NEWEST_FIRST, limit: int = 0):
        """The pymongo cursor over the results meeting `conditions` (the history's own when
        None), in `order`."""
        return self.collection.find(
            self.conditions if conditions is None else conditions, sort=order, limit=limit
        )

    def read(
        self, conditions: dict | None = None, order=NEWEST_FIRST, limit: int = 0
    ) -> list[Classification]:
        if self.empty:
            return []
        return [
            Classification.from_document(document)
            for document in self.find(conditions, order, limit)
        ]

    def window(self, conditions: dict, order, limit: int) -> list[dict]:
        """The pipeline of a windowed read: the next `scan_window` results by the indexed
        conditions (an index scan that stops there), then the unindexed ones on those alone.
        Its one document holds the `page` and, when results lie beyond the window, the
        window's last result and the one after it as `end`."""
        indexed, unindexed = split_conditions(conditions)
        size = self.scan_window
        return [
            {"$match": indexed},
            {"$sort": dict(order)},
            {"$limit": size + 1},
            {
                "$facet": {
                    "page": [{"$limit": size}, {"$match": unindexed}, {"$limit": limit}],
                    "end": [{"$skip": size - 1}, {"$project": {"created_at": 1}}],
                }
            },
        ]

    def scan(
        self, conditions: dict, order, limit: int
    ) -> tuple[list[Classification], tuple | None]:
        """Up to `limit` results meeting `conditions` in `order`, and the (created_at, id)
        position the read stopped at when it stopped at its window before the end (else None)."""
        if self.empty or not self.windowed:
            return self.read(conditions, order, limit), None
        [found] = self.collection.aggregate(self.window(conditions, order, limit))
        items = [Classification.from_document(document) for document in found["page"]]
        if len(found["end"]) < 2:
            return items, None
        end = Classification.from_document(found["end"][0])
        return items, (end.created_at, end.pk)

    def __iter__(self):
        """Every result, newest first, fetched from the database a batch at a time."""
        if not self.empty:
            for document in self.find().batch_size(500):
                yield Classification.from_document(document)

    def admits(self, created_at) -> bool:
        """Whether the filter's date range, if any, holds the stored moment `created_at`."""
        bounds = self.conditions.get("created_at", {})
        return bounds.get("$gte", created_at) <= created_at and (
            "$lt" not in bounds or created_at < bounds["$lt"]
        )

    def created(self, operator: str, created_at) -> dict:
        """The history's conditions with `operator` ("$lt" or "$gt") `created_at` added to its
        date range (where "$lt" meets the filter's own, the tighter holds)."""
        bounds = dict(self.conditions.get("created_at", {}))
        bounds[operator] = min(created_at, bounds[operator]) if operator in bounds else created_at
        return {**self.conditions, "created_at": bounds}

    def beyond(
        self, position, limit: int, newer: bool
    ) -> tuple[list[Classification], tuple | None]:
        """Up to `limit` results past the (created_at, id) `position` in reading order (older
        ones newest first, or newer ones oldest first), and where the read stopped short as
        `scan` gives it. The results created at that very moment come first, from a read of
        their own (with the moment as a plain value: the embedded engine scans the collection
        for `{"$eq": ...}` next to an `_id` range)."""
        created, pk = position
        created_at = stored("created_at", created)
        order, past = (self.OLDEST_FIRST, "$gt") if newer else (self.NEWEST_FIRST, "$lt")
        items, end = [], None
        if self.admits(created_at):
            items, end = self.scan(
                {**self.conditions, "created_at": created_at, "_id": {past: pk}}, order, limit
            )
        if len(items) < limit and end is None:
            more, end = self.scan(self.created(past, created_at), order, limit - len(items))
            items += more
        return items, end

    def page(self, older_than: str = "", newer_than: str = "", size: int = PAGE_SIZE):
        """One page newest-first, keyed on (created_at, id): stable while new results arrive,
        and as fast deep in the history as at its start. Returns (items, older, newer) cursors.
        A windowed read that stopped short has a cursor past what it scanned; an empty page
        turns back from where it started, at the edge of that moment's results."""
        if newer_than and (position := decode_cursor(newer_than)):
            found, end = self.beyond(position, size + 1, newer=True)
            items = found[:size][::-1]
            newer = encode_cursor(items[0]) if len(found) > size else end and encode_position(*end)
            older = encode_cursor(items[-1]) if items else encode_position(position[0], LAST_ID)
        else:
            position = decode_cursor(older_than) if older_than else None
            if position:
                found, end = self.beyond(position, size + 1, newer=False)
            else:
                found, end = self.scan(self.conditions, self.NEWEST_FIRST, size + 1)
            items = found[:size]
            older = encode_cursor(items[-1]) if len(found) > size else end and encode_position(*end)
            newer = position and (
                encode_cursor(items[0]) if items else encode_position(position[0], FIRST_ID)
            )
        return items, older or "", newer or ""


def export_row(item: Classification) -> dict:
    return {
        "id": str(item.pk),
        "created_at": item.created_at.isoformat(),
        "status": item.status,
        "original_filename": item.original_filename,
        "source_url": item.source_url,
        "top_label": item.top_label,
        "top_probability": item.top_probability,
        "corrected_label": item.corrected_label,
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


def export_csv(results: History):
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
    for item in results:
        writer.writerow({k: spreadsheet_safe(v) for k, v in export_row(item).items()})
        yield flush()


def export_json(results: History):
    yield "["
    for index, item in enumerate(results):
        yield ("," if index else "") + "\n" + json.dumps(export_row(item))
    yield "\n]\n"

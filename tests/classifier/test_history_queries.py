"""The history's reads (classifier.history.History): the same results as the ORM would give,
pages that visit each result once in both directions, and every read an index scan."""

import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from classifier.history import SCAN_WINDOW, History, HistoryFilter
from classifier.models import Classification
from tests.conftest import make_result

# The history bench's plan summary, the same chain of stages its table prints.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from history import plan_summary  # noqa: E402

LABELS = ("cat", "dog", "ship")


@pytest.fixture
def start(alice, bob):
    """Alice's 30 results over 15 days from the moment returned, two at each moment (ties for
    the keyset), three labels, some failed; bob's 3."""
    first = timezone.now().replace(microsecond=0) - timedelta(days=15)
    for n in range(30):
        status = "failed" if n % 7 == 3 else "done"
        make_result(
            alice,
            LABELS[n % 3],
            0.3 + n / 50,
            status,
            f"photo-{n}.jpg",
            first + timedelta(days=n // 2),
        )
    for n in range(3):
        make_result(bob, "cat", 0.9, created_at=first + timedelta(days=n))
    return first


def newest_first(queryset) -> list:
    return list(queryset.order_by("-created_at", "-id").values_list("pk", flat=True))


def midnight(day):
    return timezone.make_aware(datetime.combine(day, time.min))


def test_each_filter_finds_what_the_orm_finds(alice, start):
    day = (start + timedelta(days=5)).date()
    mine = Classification.objects.filter(owner=alice)
    expected = {
        (): mine,
        (("label", "dog"),): mine.filter(top_label="dog"),
        (("status", "failed"),): mine.filter(status="failed"),
        (("min_probability", "70"),): mine.filter(top_probability__gte=0.7),
        (("q", "PHOTO-1"),): mine.filter(original_filename__icontains="photo-1"),
        (("created_after", day),): mine.filter(created_at__gte=midnight(day)),
        (("created_before", day), ("label", "cat")): mine.filter(
            top_label="cat", created_at__lt=midnight(day + timedelta(days=1))
        ),
    }
    for data, queryset in expected.items():
        found = [item.pk for item in History(alice, HistoryFilter(dict(data)))]
        assert found == newest_first(queryset) and found, data


def test_a_result_read_by_the_history_is_the_orm_record(alice, start):
    item = History(alice, HistoryFilter({})).read(limit=1)[0]
    record = Classification.objects.get(pk=item.pk)
    assert {f.attname: getattr(item, f.attname) for f in Classification._meta.concrete_fields} == {
        f.attname: getattr(record, f.attname) for f in Classification._meta.concrete_fields
    }


def test_an_invalid_filter_finds_nothing(alice, start):
    history = History(alice, HistoryFilter({"min_probability": "500"}))
    assert list(history) == [] and history.page() == ([], "", "")


# "up to a day": the filter's own upper bound meets the keyset's. "named" and "probable" are
# windowed reads (no index holds their conditions).
PAGED = {
    "everything": lambda start: {},
    "up to a day": lambda start: {"created_before": (start + timedelta(days=9)).date()},
    "cats": lambda start: {"label": "cat"},
    "named": lambda start: {"q": "photo-1"},
    "probable": lambda start: {"min_probability": "40", "label": "dog"},
}


def older_pages(history) -> list:
    """(items, newer cursor) of each page of 3, from the first while pages link older ones."""
    pages, older = [], ""
    while True:
        items, older, newer = history.page(older_than=older, size=3)
        pages.append((items, newer))
        if not older:
            return pages


@pytest.mark.parametrize("window", [SCAN_WINDOW, 4])
@pytest.mark.parametrize("paged", PAGED)
def test_pages_visit_each_result_once_both_ways(alice, start, paged, window, monkeypatch):
    """Pages of 3 split the results created at one moment; each is seen once, in order, also
    when a scan window of 4 cuts windowed pages short or leaves them empty."""
    monkeypatch.setattr(History, "scan_window", window)
    history = History(alice, HistoryFilter(PAGED[paged](start)))
    everything = [item.pk for item in history]
    pages = older_pages(history)
    assert [item.pk for items, _ in pages for item in items] == everything
    assert len(pages) > 2 and not pages[0][1]  # the first page has no newer one
    backwards = []
    newer = pages[-1][1]
    while newer:
        items, _, newer = history.page(newer_than=newer, size=3)
        backwards = [item.pk for item in items] + backwards
    assert backwards + [item.pk for item in pages[-1][0]] == everything


def test_every_read_a_page_makes_is_an_index_scan(alice, start, monkeypatch):
    """The reads of a first, an older and a newer page, as the database plans them: an index
    of the owner's results for each, never a scan of the collection (which the ORM's `$and`
    and `$or` filters got on the embedded engine). Pages of 5 end between two results created
    at the same moment, so the reads of those ties run too."""
    reads, find, window = [], History.find, History.window

    def recording_find(self, *args, **kwargs):
        cursor = find(self, *args, **kwargs)
        reads.append(cursor.clone())
        return cursor

    def recording_window(self, *args, **kwargs):
        pipeline = window(self, *args, **kwargs)
        reads.append((self.collection, pipeline))
        return pipeline

    monkeypatch.setattr(History, "find", recording_find)
    monkeypatch.setattr(History, "window", recording_window)
    for data, index in [
        ({}, "classification_history_keyset"),
        ({"label": "cat"}, "classification_label_keyset"),
        ({"status": "done"}, "classification_status_keyset"),
        (
            {"created_after": start.date(), "created_before": timezone.now().date()},
            "classification_history_keyset",
        ),
        ({"q": "photo"}, "classification_history_keyset"),
        ({"label": "cat", "min_probability": "20"}, "classification_label_keyset"),
    ]:
        history = History(alice, HistoryFilter(data))
        _, older, _ = history.page(size=5)
        _, _, newer = history.page(older_than=older, size=5)
        history.page(newer_than=newer, size=5)
        assert len(reads) >= 5
        for read in reads:
            assert f"IXSCAN {index}" in plan_summary(read), (data, read)
        reads.clear()


def test_a_windowed_page_scans_at_most_its_window(alice, start, monkeypatch):
    """The one match is the oldest of 30 results: windows of 4 give seven empty pages, each
    with a cursor past its window and one back, before the page that holds it."""
    monkeypatch.setattr(History, "scan_window", 4)
    history = History(alice, HistoryFilter({"q": "photo-0."}))
    pages = older_pages(history)
    assert [[item.original_filename for item in items] for items, _ in pages] == [[]] * 7 + [
        ["photo-0.jpg"]
    ]
    assert not pages[0][1] and all(newer for _, newer in pages[1:])
    items, older, newer = history.page(newer_than=pages[1][1], size=3)
    assert items == [] and older and not newer  # back at the newest end


def test_a_window_that_reaches_the_end_has_no_cursor_past_it(alice, start, monkeypatch):
    monkeypatch.setattr(History, "scan_window", 30)
    assert History(alice, HistoryFilter({"q": "photo-0."})).page(size=3)[1:] == ("", "")
    monkeypatch.setattr(History, "scan_window", 29)
    assert History(alice, HistoryFilter({"q": "photo-0."})).page(size=3)[1]

"""Classification.by_pk and insert: results read and written with plain pymongo calls hold exactly
what the ORM reads and writes."""

import pytest
from bson import ObjectId
from django.core.exceptions import ValidationError
from django.utils import timezone

from classifier.models import Classification
from tests import badimages
from tests.classifier.test_classify_task import run, stored


def test_a_finished_result_reads_as_the_orm_reads_it(alice, active_model):
    job = run(stored(alice))
    Classification.objects.filter(pk=job.pk).update(
        corrected_label="cat", corrected_at=timezone.now()
    )
    through_orm = Classification.objects.get(pk=job.pk)
    read = Classification.by_pk(str(job.pk))
    for field in Classification._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(through_orm, field.attname), field.name
    assert read.finished_at.tzinfo is not None and isinstance(read.timings, dict)
    assert read.owner == alice and read.model_version == active_model
    assert not read._state.adding


def test_a_queued_upload_reads_with_its_empty_fields(alice):
    job = Classification.store(badimages.jpeg(), owner=alice, filename="a.jpg")
    read = Classification.by_pk(job.pk)
    assert (read.status, read.started_at, read.top_probability, read.probabilities) == (
        "queued",
        None,
        None,
        [],
    )


def test_no_such_result_and_no_id_at_all():
    with pytest.raises(Classification.DoesNotExist):
        Classification.by_pk(ObjectId())
    with pytest.raises(ValidationError):
        Classification.by_pk("not an id")


@pytest.mark.parametrize("owned", [True, False])
def test_an_inserted_record_is_stored_as_the_orm_stores_it(alice, owned):
    from django.db import connection

    values = dict(
        owner=alice if owned else None,
        session_key="" if owned else "abc",
        image_key="images/x/2026/12/a.jpg",
        original_filename="photo.jpg",
        sha256="c" * 64,
        size=1239,
        format="JPEG",
        width=32,
        height=32,
    )
    created, inserted = Classification.objects.create(**values), Classification.insert(**values)
    collection = connection.database[Classification._meta.db_table]
    through_orm, direct = (
        collection.find_one({"_id": created.pk}),
        collection.find_one({"_id": inserted.pk}),
    )
    for stamp in ("created_at", "queued_at"):
        assert abs(through_orm.pop(stamp) - direct.pop(stamp)).total_seconds() < 5
    assert {**through_orm, "_id": None} == {**direct, "_id": None}
    assert not inserted._state.adding and Classification.by_pk(inserted.pk).owner_id == (
        alice.pk if owned else None
    )

"""Classification.by_pk: one result read with a plain find_one holds exactly what the ORM reads."""

import pytest
from bson import ObjectId
from django.core.exceptions import ValidationError
from django.utils import timezone

from classifier.models import Classification
from tests import badimages
from tests.test_classify_task import run, stored


def test_a_finished_result_reads_as_the_orm_reads_it(alice, active_model):
    job = run(stored(alice))
    Classification.objects.filter(pk=job.pk).update(corrected_label="cat", corrected_at=timezone.now())
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
    assert (read.status, read.started_at, read.top_probability, read.probabilities) == ("queued", None, None, [])


def test_no_such_result_and_no_id_at_all():
    with pytest.raises(Classification.DoesNotExist):
        Classification.by_pk(ObjectId())
    with pytest.raises(ValidationError):
        Classification.by_pk("not an id")

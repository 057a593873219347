"""A model version's per-class quality page: the figures and the confusion matrix, each
mistake linking to the misclassified validation images the report kept."""

import keras
import pytest
from django.urls import reverse

from classifier.models import ModelVersion
from mltrain.keras.datasets import load_image_folder
from mltrain.keras.report import write_report
from tests.imagefolder import make_image_folder
from tests.tinymodel import make_run_dir


@pytest.fixture
def reported_version(db, tmp_path):
    """An untrained tiny model evaluated on colour images: it makes plenty of mistakes."""
    run = make_run_dir(tmp_path / "run")
    validation = load_image_folder(make_image_folder(tmp_path / "images", per_class=5), (32, 32))
    report = write_report(
        run, keras.saving.load_model(run / "model.keras", compile=False), validation
    )
    return ModelVersion.publish(run, "colours"), report["validation"]


def test_quality_page_lists_classes_and_links_every_mistake(admin_client, reported_version):
    version, metrics = reported_version
    page = admin_client.get(
        reverse("admin:classifier_modelversion_quality", args=[version.pk])
    ).content.decode()
    for name in ("blue", "green", "red"):
        assert f"<td>{name}</td>" in page
    mistakes = [
        (i, j)
        for i, row in enumerate(metrics["confusion_matrix"])
        for j, n in enumerate(row)
        if n and i != j
    ]
    assert mistakes
    for true, predicted in mistakes:
        assert (
            reverse("admin:classifier_modelversion_cell", args=[version.pk, true, predicted])
            in page
        )
    true, predicted = mistakes[0]
    cell = admin_client.get(
        reverse("admin:classifier_modelversion_cell", args=[version.pk, true, predicted])
    ).content.decode()
    shown = cell.count('src="data:image/png;base64,')
    assert shown == min(metrics["confusion_matrix"][true][predicted], 24) and shown > 0
    change = admin_client.get(
        reverse("admin:classifier_modelversion_change", args=[version.pk])
    ).content.decode()
    assert reverse("admin:classifier_modelversion_quality", args=[version.pk]) in change


def test_cells_out_of_range_and_non_staff_are_refused(
    client, alice, admin_client, reported_version
):
    version, _ = reported_version
    assert (
        admin_client.get(
            reverse("admin:classifier_modelversion_cell", args=[version.pk, 7, 0])
        ).status_code
        == 404
    )
    client.force_login(alice)
    response = client.get(reverse("admin:classifier_modelversion_quality", args=[version.pk]))
    assert response.status_code == 302 and "login" in response.url


def test_the_shipped_model_has_its_figures_but_no_example_images(db, admin_client):
    """Validation images are data, which the repository does not hold: the shipped model's page
    has the table and the matrix, without links to examples."""
    from django.core.management import call_command

    call_command("publish_shipped")
    version = ModelVersion.active()
    page = admin_client.get(
        reverse("admin:classifier_modelversion_quality", args=[version.pk])
    ).content.decode()
    assert "<td>cat</td>" in page and 'id="confusion-matrix"' in page
    assert reverse("admin:classifier_modelversion_cell", args=[version.pk, 3, 5]) not in page
    # Its curves and confusion matrix, drawn from the committed history.csv and metrics.json.
    assert {"curves.png", "confusion_matrix.png"} <= set(version.report_keys)
    change = admin_client.get(
        reverse("admin:classifier_modelversion_change", args=[version.pk])
    ).content.decode()
    for name in ("curves.png", "confusion_matrix.png"):
        url = reverse("admin:classifier_modelversion_report", args=[version.pk, name])
        assert url in change
        image = admin_client.get(url)
        assert image.status_code == 200 and b"".join(image.streaming_content)[:4] == b"\x89PNG"

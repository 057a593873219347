import tempfile

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import smart_split, unescape_string_literal
from django.views.decorators.http import require_POST

from classifier import corrections, dispatch, quality
from classifier.access import stored_file_response, thumbnail_response
from classifier.models import Classification, Correction, ModelVersion, models_storage
from classifier.probabilities import describe_ood
from classifier.validation import ALLOWED_FORMATS
from imageclass import converters  # noqa: F401  (registers <objectid:...>)

EXPORT_FORMATS = {"tflite": "TFLite (LiteRT)", "onnx": "ONNX"}

REPORT_IMAGES = ("curves.png", "confusion_matrix.png", "reliability.png")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "architecture",
        "accuracy",
        "classes",
        "is_active",
        "make_active",
        "created_at",
        "activated_at",
        "activated_by",
    )
    list_filter = ("is_active", "name")
    # The JSON fields show as tables, images and links (validation, report, downloads).
    exclude = ("metrics", "exports", "report_keys")
    readonly_fields = [
        f.name
        for f in ModelVersion._meta.fields
        if f.name not in ("metrics", "exports", "report_keys")
    ] + [
        "validation",
        "calibration",
        "none_of_the_known_classes",
        "quality_page",
        "downloads",
        "report",
    ]
    actions = ["activate"]

    @admin.display(description="validation accuracy")
    def accuracy(self, obj):
        return obj.accuracy_text or "—"

    @admin.display(description="validation")
    def validation(self, obj):
        """Accuracy and loss, and the per-class figures, as tables: not raw JSON."""
        figures = obj.metrics.get("validation") or {}
        if not figures:
            return "—"
        summary = format_html(
            "<table><tr><th>accuracy</th><td>{}</td></tr><tr><th>loss</th><td>{}</td></tr>"
            "<tr><th>images</th><td>{}</td></tr><tr><th>epochs</th><td>{}</td></tr></table>",
            f"{figures.get('accuracy', 0):.2%}",
            f"{figures['loss']:.4f}" if figures.get("loss") is not None else "—",
            f"{figures.get('images', 0):,}",
            obj.metrics.get("epochs", "—"),
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}")
                for name, m in (figures.get("per_class") or {}).items()
            ),
        )
        if not rows:
            return summary
        return format_html(
            "{}<table><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            summary,
            rows,
        )

    @admin.display(description="classes")
    def classes(self, obj):
        return len(obj.class_names)

    @admin.display(description="")
    def make_active(self, obj):
        """One click: the button posts the changelist's form (and its CSRF token) to `activate_one`."""
        if obj.is_active:
            return ""
        url = reverse("admin:classifier_modelversion_activate", args=[obj.pk])
        return format_html(
            '<button type="submit" class="button" formaction="{}">Activate</button>', url
        )

    @admin.display(description="report")
    def report(self, obj):
        images = [
            (reverse("admin:classifier_modelversion_report", args=[obj.pk, name]), name)
            for name in REPORT_IMAGES
            if name in obj.report_keys
        ]
        return (
            format_html_join(
                "",
                '<img src="{}" alt="{}" style="max-width: 480px; display: block; margin-bottom: 1em">',
                images,
            )
            or "—"
        )

    @admin.display(description="calibration")
    def calibration(self, obj):
        figures = obj.calibration
        threshold = f"uncertain below {obj.uncertain_below:.0%}"
        if not figures:
            return f"not fitted (no validation images when it was published); {threshold}"
        return (
            f"temperature {figures['temperature']:.3f}; expected calibration error {figures['ece_before']:.3f} -> "
            f"{figures['ece_after']:.3f}, NLL {figures['nll_before']:.4f} -> {figures['nll_after']:.4f} on validation; {threshold}"
        )

    @admin.display(description="none of the known classes")
    def none_of_the_known_classes(self, obj):
        figures = obj.out_of_distribution
        if not figures:
            return "no verdict (published before reports fitted one)"
        return describe_ood(figures)

    @admin.display(description="per-class quality")
    def quality_page(self, obj):
        if not obj.metrics.get("validation", {}).get("per_class"):
            return "—"
        url = reverse("admin:classifier_modelversion_quality", args=[obj.pk])
        return format_html('<a href="{}">Precision, recall, F1 and the confusion matrix</a>', url)

    @admin.display(description="downloads")
    def downloads(self, obj):
        """The Keras artifact, and each export: a download once built, else a link that builds it."""
        links = [
            (
                reverse("admin:classifier_modelversion_download", args=[obj.pk, "keras"]),
                "Keras (.keras)",
                "",
            )
        ]
        for fmt, label in EXPORT_FORMATS.items():
            record = obj.exports.get(fmt, {})
            note = {
                "ready": f"top-1 agreement with Keras {record.get('agreement', 0):.0%} on {record.get('sample_images')} sample images",
                "pending": "being built; reload shortly",
                "failed": f"failed: {record.get('error', '')}; click to try again",
            }.get(record.get("status"), "not built yet; click to build")
            links.append(
                (reverse("admin:classifier_modelversion_download", args=[obj.pk, fmt]), label, note)
            )
        return format_html_join(
            "", '<div><a href="{}">{}</a> <span class="help">{}</span></div>', links
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<objectid:pk>/report/<str:name>",
                view(self.report_file),
                name="classifier_modelversion_report",
            ),
            path(
                "<objectid:pk>/download/<str:fmt>",
                view(self.download),
                name="classifier_modelversion_download",
            ),
            path(
                "<objectid:pk>/quality/", view(self.quality), name="classifier_modelversion_quality"
            ),
            path(
                "<objectid:pk>/activate/",
                view(require_POST(self.activate_one)),
                name="classifier_modelversion_activate",
            ),
            path(
                "<objectid:pk>/quality/<int:true>/<int:predicted>/",
                view(self.quality_cell),
                name="classifier_modelversion_cell",
            ),
            *super().get_urls(),
        ]

    def viewable_version(self, request, pk) -> ModelVersion:
        version = ModelVersion.objects.filter(pk=pk).first()
        if version is None or not self.has_view_permission(request, version):
            raise Http404
        return version

    def download(self, request, pk, fmt):
        """The artifact or a built export as a file; an export not built yet is queued."""
        version = self.viewable_version(request, pk)
        filename = f"{version.name}-v{version.version}"
        if fmt == "keras":
            return stored_file_response(
                models_storage(),
                version.artifact_key,
                "application/octet-stream",
                f"{filename}.keras",
            )
        if fmt not in EXPORT_FORMATS:
            raise Http404
        if dispatch.request_export(version, fmt) == "ready":
            key = version.exports[fmt]["key"]
            return stored_file_response(
                models_storage(), key, "application/octet-stream", f"{filename}.{fmt}"
            )
        self.message_user(
            request,
            f"The {EXPORT_FORMATS[fmt]} export of {version} is being built by the training worker; reload in a minute.",
        )
        return redirect("admin:classifier_modelversion_change", version.pk)

    def quality(self, request, pk):
        version = self.viewable_version(request, pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Per-class quality of {version}",
            "version": version,
            "opts": self.model._meta,
            **quality.summary(version),
        }
        return TemplateResponse(request, "admin/classifier/modelversion/quality.html", context)

    def quality_cell(self, request, pk, true, predicted):
        version = self.viewable_version(request, pk)
        names = version.class_names
        if not (0 <= true < len(names) and 0 <= predicted < len(names)):
            raise Http404
        context = {
            **self.admin_site.each_context(request),
            "title": f"{names[true]} taken for {names[predicted]} by {version}",
            "version": version,
            "opts": self.model._meta,
            "examples": quality.misclassified(version, true, predicted),
            "count": quality.cell_count(version, true, predicted),
        }
        return TemplateResponse(request, "admin/classifier/modelversion/quality_cell.html", context)

    def report_file(self, request, pk, name):
        version = ModelVersion.objects.filter(pk=pk).first()
        if version is None or name not in REPORT_IMAGES or name not in version.report_keys:
            raise Http404
        return stored_file_response(models_storage(), version.report_keys[name], "image/png")

    @admin.action(description="Activate the selected version (also to roll back)")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = queryset.get()
        version.activate(request.user)
        self.log_change(request, version, f"Activated {version}")
        self.message_user(request, f"{version} is now the active model.")

    def activate_one(self, request, pk):
        version = ModelVersion.objects.filter(pk=pk).first()
        if version is None or not self.has_change_permission(request, version):
            raise Http404
        self.activate(request, ModelVersion.objects.filter(pk=pk))
        return redirect("admin:classifier_modelversion_changelist")

    def has_add_permission(self, request):
        return False  # versions come from `manage.py publish`


# The results lists below are built to stay cheap at a million results: Django's defaults read
# the whole collection several times a page (a count, a second count of everything, the date
# hierarchy's two aggregations, a `$group` for each value filter, a `$lookup` of every result's
# owner for a search) and the owner of each row one query at a time.


class ResultsPaginator(Paginator):
    """Counts an unfiltered list from the collection's metadata (MongoDB's
    estimatedDocumentCount, constant time) instead of reading every result; a filtered list is
    counted as usual."""

    @cached_property
    def count(self):
        queryset = self.object_list
        if queryset.query.has_filters():
            return super().count
        return (
            connections[queryset.db]
            .database[queryset.model._meta.db_table]
            .estimated_document_count()
        )


class ChoicesFilter(admin.SimpleListFilter):
    """Equality on the field `parameter_name`, its choices from `values()` rather than from a
    `$group` over every result."""

    def values(self):
        raise NotImplementedError

    def lookups(self, request, model_admin):
        values = self.values()
        if self.value() and self.value() not in values:
            values = [
                *values,
                self.value(),
            ]  # e.g. a label of a deleted version, from a link: still applied
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class LabelFilter(ChoicesFilter):
    title = "top label"
    parameter_name = "top_label"

    def values(self):
        """The classes of the registered model versions."""
        return sorted(
            {
                name
                for names in ModelVersion.objects.values_list("class_names", flat=True)
                for name in names
            }
        )


class CorrectedLabelFilter(LabelFilter):
    title = "corrected label"
    parameter_name = "corrected_label"

    def values(self):
        """The registered classes and the new ones owners gave: those are read from the
        corrections alone, which the corrections list reads anyway."""
        given = (
            Classification.objects.exclude(corrected_label="")
            .values_list("corrected_label", flat=True)
            .distinct()
        )
        return sorted({*super().values(), *given})


class ModelNameFilter(ChoicesFilter):
    title = "model"
    parameter_name = "model_name"

    def values(self):
        """What each registered version writes into its results (`name vN`)."""
        return [
            str(version)
            for version in ModelVersion.objects.order_by("name", "-version").only("name", "version")
        ]


class FormatFilter(ChoicesFilter):
    title = "format"
    parameter_name = "format"

    def values(self):
        return list(ALLOWED_FORMATS)


class ResultsChangeList(ChangeList):
    def apply_select_related(self, queryset):
        # select_related() skips the nullable owner, and a join would be a `$lookup` per result.
        return queryset.prefetch_related("owner")


class ResultsAdmin(admin.ModelAdmin):
    @admin.display(description="probability", ordering="top_probability")
    def probability(self, obj):
        return f"{obj.top_probability:.1%}" if obj.top_probability is not None else "—"

    """A list of results whose page reads no more than the page: owners in one query, no count
    of everything, no join in the search."""

    paginator = ResultsPaginator
    show_full_result_count = False
    search_fields = ("original_filename",)
    search_help_text = "Part of the file name or of the owner's username."

    def get_changelist(self, request, **kwargs):
        return ResultsChangeList

    def get_search_results(self, request, queryset, search_term):
        """Every word in the file name or the owner's username (Django's rule for search_fields):
        the matching users are looked up first, so no result is joined to its owner."""
        for word in smart_split(search_term):
            if word[0] in "\"'" and word[-1] == word[0]:
                word = unescape_string_literal(word)
            owners = (
                get_user_model()
                .objects.filter(username__icontains=word)
                .values_list("pk", flat=True)
            )
            queryset = queryset.filter(
                Q(original_filename__icontains=word) | Q(owner__in=list(owners))
            )
        return queryset, False


@admin.register(Classification)
class ClassificationAdmin(ResultsAdmin):
    list_display = (
        "thumbnail",
        "original_filename",
        "owner",
        "status",
        "top_label",
        "probability",
        "model_name",
        "created_at",
    )
    # Here, not as the model's default: a default ordering is compiled into every query, inserts
    # and lookups by id included (a tenth of an upload's time in the web process).
    ordering = ("-created_at", "-id")
    list_filter = ("status", LabelFilter, FormatFilter, ModelNameFilter, "created_at")
    raw_id_fields = ("owner", "model_version")
    readonly_fields = ("thumbnail",) + tuple(
        f.name for f in Classification._meta.fields if f.name != "id"
    )

    @admin.display(description="image")
    def thumbnail(self, obj):
        url = reverse("admin:classifier_classification_image", args=[obj.pk])
        return format_html(
            '<img src="{}" alt="" style="height: 48px; width: 48px; object-fit: cover">', url
        )

    def get_urls(self):
        return [
            path(
                "<objectid:pk>/image",
                self.admin_site.admin_view(self.image),
                name="classifier_classification_image",
            ),
            *super().get_urls(),
        ]

    def image(self, request, pk):
        if not self.has_view_permission(request):
            raise Http404
        classification = Classification.objects.filter(pk=pk).first()
        if classification is None:
            raise Http404
        return thumbnail_response(classification)

    def has_add_permission(self, request):
        return False  # results come from uploads


@admin.register(Correction)
class CorrectionAdmin(ResultsAdmin):
    """Results their owners marked wrong, with the right label: material for the next training
    run, exported as an image-folder dataset that the training form takes as it is."""

    list_display = (
        "thumbnail",
        "original_filename",
        "owner",
        "top_label",
        "corrected_label",
        "model_name",
        "corrected_at",
    )
    list_filter = (CorrectedLabelFilter, ModelNameFilter)
    readonly_fields = ("thumbnail",) + tuple(
        f.name for f in Classification._meta.fields if f.name != "id"
    )
    actions = ["export_dataset"]
    thumbnail = ClassificationAdmin.thumbnail

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(corrected_label="").order_by("-corrected_at")

    def has_add_permission(self, request):
        return False

    @admin.action(description="Export the selected corrections as an image-folder dataset (zip)")
    def export_dataset(self, request, queryset):
        target = tempfile.SpooledTemporaryFile(max_size=16 * 2**20)
        count = corrections.write_dataset(queryset.prefetch_related(None), target)  # no owners
        target.seek(0)
        self.message_user(request, f"{count} corrected images exported.")
        return FileResponse(
            target, as_attachment=True, filename=f"corrections-{timezone.now():%Y%m%d-%H%M}.zip"
        )

"""REST API v1 for classifications: the same model methods, forms and access rules as the web."""

import time

import redis
from django import forms
from django.conf import settings
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Share
from classifier import access, dispatch, history, notify
from classifier.forms import MAX_FILES, UploadForm
from classifier.history import HistoryFilter
from classifier.models import Classification, ModelVersion
from imageclass import api_examples as examples
from imageclass.middleware import RETRY_AFTER_SECONDS, ServiceUnavailable


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField()
    probability = serializers.FloatField()


class ClassificationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)
    image_url = serializers.SerializerMethodField()
    model_version = serializers.CharField(source="model_name")
    predictions = PredictionSerializer(many=True)
    class_names = serializers.ListField(
        child=serializers.CharField(),
        help_text="The classes of the model version that made this result, in its output order.",
    )
    uncertain = serializers.BooleanField(source="is_uncertain")
    out_of_distribution = serializers.BooleanField(
        source="is_out_of_distribution",
        help_text="The photo seems to show none of the model's classes: its score is over the "
        "threshold the model version fitted on validation images (the ranked labels still come).",
    )
    ood_score = serializers.FloatField(
        allow_null=True,
        help_text="The entropy of the model's own probabilities, in nats; null before the result.",
    )
    # A string, not a "uri": it is empty for file uploads.
    source_url = serializers.CharField(
        help_text="The URL the image was fetched from; empty for file uploads."
    )

    class Meta:
        model = Classification
        fields = (
            "id",
            "status",
            "created_at",
            "finished_at",
            "original_filename",
            "source_url",
            "width",
            "height",
            "format",
            "image_url",
            "model_version",
            "top_label",
            "top_probability",
            "uncertain",
            "out_of_distribution",
            "ood_score",
            "predictions",
            "class_names",
            "error",
            "corrected_label",
        )
        read_only_fields = fields

    def to_representation(self, obj):
        """What the declared fields render, written out: DRF binds a deep copy of every
        declared field for each result it serializes, a large share of the web's CPU under
        load. The declarations stay for the schema; a test holds the two equal."""
        return {
            "id": str(obj.pk),
            "status": obj.status,
            "created_at": self.datetime_field.to_representation(obj.created_at),
            "finished_at": obj.finished_at
            and self.datetime_field.to_representation(obj.finished_at),
            "original_filename": obj.original_filename,
            "source_url": obj.source_url,
            "width": obj.width,
            "height": obj.height,
            "format": obj.format,
            "image_url": self.get_image_url(obj),
            "model_version": obj.model_name,
            "top_label": obj.top_label,
            "top_probability": obj.top_probability,
            "uncertain": obj.is_uncertain,
            "out_of_distribution": obj.is_out_of_distribution,
            "ood_score": obj.ood_score,
            "predictions": [
                {"label": p["label"], "probability": float(p["probability"])}
                for p in obj.predictions
            ],
            "class_names": list(obj.class_names),
            "error": obj.error,
            "corrected_label": obj.corrected_label,
        }

    @cached_property
    def datetime_field(self) -> serializers.DateTimeField:
        """A datetime field bound to the request's time zone, found once for all the results
        one serializer renders: DRF's field looks it up for every datetime, through Django's
        context-local store, a visible share of a web worker's time under load."""
        return serializers.DateTimeField(default_timezone=timezone.get_current_timezone())

    def get_image_url(self, obj) -> str:
        before, after = self.image_url_around_id
        return f"{before}{obj.pk}{after}"

    @cached_property
    def image_url_around_id(self) -> tuple[str, str]:
        """An image URL's text before and after the result's id, found once for all the
        results one serializer renders: reversing a URL for each was a page's largest cost."""
        marker = "0" * 24  # an ObjectId's length, so the URL pattern accepts it
        url = self.context["request"].build_absolute_uri(
            reverse("api:classification-image", args=[marker])
        )
        before, _, after = url.partition(marker)
        return before, after


class ApiHistoryFilter(HistoryFilter):
    """The web filter with probabilities as fractions (0-1), as the API contract has them."""

    min_probability = forms.FloatField(required=False, min_value=0, max_value=1)
    probability_scale = 1


PageSerializer = inline_serializer(
    "ClassificationPage",
    {
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": ClassificationSerializer(many=True),
    },
)
# An ISO 8601 day (the site's time zone) or a moment with its zone (history.MomentField).
DATE_OR_MOMENT = {
    "oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}
LIST_PARAMETERS = [
    OpenApiParameter("cursor", str, description="from `next` or `previous` of a page"),
    OpenApiParameter("label", str, description="top label equals, whatever its case"),
    OpenApiParameter("min_probability", float, description="top probability at least (0-1)"),
    OpenApiParameter("status", str, enum=Classification.Status.values),
    OpenApiParameter("created_after", DATE_OR_MOMENT, description="on or after this day or moment"),
    OpenApiParameter(
        "created_before", DATE_OR_MOMENT, description="on or before this day or moment"
    ),
    OpenApiParameter(
        "q",
        str,
        description="original filename contains; with `q` or `min_probability` a page "
        f"reads at most {history.SCAN_WINDOW:,} results, so it may be short or empty and still have `next`",
    ),
]
UPLOAD_WAIT_PARAMETER = OpenApiParameter(
    "wait",
    float,
    description=f"seconds (up to {notify.MAX_WAIT:g}) to wait for the job to end before "
    "answering: one request instead of an upload and polls",
)
POLL_WAIT_PARAMETER = OpenApiParameter(
    "wait",
    float,
    description=f"seconds (up to {notify.MAX_WAIT:g}) to wait for an unfinished job to end "
    f"before answering; without it, API_POLL_WAIT (default {settings.API_POLL_WAIT:g}); 0 answers at once",
)
UploadSerializer = inline_serializer(
    "Upload",
    {
        "image": serializers.ListField(
            child=serializers.FileField(),
            help_text=f"one image file, or up to {MAX_FILES} (repeat the part) for one answer per file",
        )
    },
)
UrlUploadSerializer = inline_serializer("UrlUpload", {"image_url": serializers.URLField()})


def upload_form(request):
    """The web upload form, fed from a multipart `image` or a JSON/form `image_url`."""
    files = (
        MultiValueDict({"images": request.FILES.getlist("image")})
        if "image" in request.FILES
        else MultiValueDict()
    )
    return UploadForm({"image_url": request.data.get("image_url", "")}, files, max_files=MAX_FILES)


def form_errors(form) -> dict:
    errors = {
        "image" if name == "images" else name: list(messages)
        for name, messages in form.errors.items()
    }
    errors.pop("__all__", None)
    detail = " ".join(form.non_field_errors()) or "The upload was refused."
    return {"detail": detail, **errors}


def wait_seconds(request, default: float = 0.0) -> float:
    raw = request.query_params.get("wait", "")
    try:
        wait = float(raw) if raw else default
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= notify.MAX_WAIT:  # also refuses nan and inf
        raise serializers.ValidationError(
            {"wait": [f"A number of seconds from 0 to {notify.MAX_WAIT:g}."]}
        )
    return wait


def wait_for_end(pk, seconds: float) -> bool:
    """Wait for the job's end signal; an unreachable Redis answers at once with the job as it is."""
    try:
        return notify.wait_for_end(pk, seconds)
    except redis.RedisError:
        return False


def page_response(request, results: history.History):
    cursor = request.query_params.get("cursor", "")
    direction, _, position = cursor.partition(":")
    items, older, newer = results.page(
        position if direction == "o" else "", position if direction == "n" else ""
    )

    def link(value):
        if not value:
            return None
        query = request.query_params.copy()
        query["cursor"] = value
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    rendered = ClassificationSerializer(items, many=True, context={"request": request}).data
    return Response(
        {
            "next": link(older and f"o:{older}"),
            "previous": link(newer and f"n:{newer}"),
            "results": rendered,
        }
    )


def filtered(request, owner) -> history.History:
    filters = ApiHistoryFilter(request.query_params)
    if not filters.is_valid():
        raise exceptions.ValidationError(filters.errors)
    return history.History(owner, filters)


class FileAnswerSerializer(serializers.Serializer):
    filename = serializers.CharField()
    status = serializers.IntegerField(
        help_text="201 finished, 202 queued, 400 refused (see detail), 503 not queued (retry)"
    )
    detail = serializers.CharField(required=False, help_text="why the file was refused")
    classification = ClassificationSerializer(required=False)


class FilesAnswerSerializer(serializers.Serializer):
    files = FileAnswerSerializer(many=True)


class ClassificationListView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_scope = "read"

    def get_throttles(self):
        if self.request.method == "POST":
            self.throttle_scope = "upload"
        return super().get_throttles()

    @extend_schema(
        operation_id="classifications_list",
        parameters=LIST_PARAMETERS,
        responses=PageSerializer,
        summary="My results, newest first",
        examples=examples.PAGE,
    )
    def get(self, request):
        return page_response(request, filtered(request, request.user))

    @extend_schema(
        request={"multipart/form-data": UploadSerializer, "application/json": UrlUploadSerializer},
        parameters=[UPLOAD_WAIT_PARAMETER],
        responses={
            202: ClassificationSerializer,
            201: ClassificationSerializer,
            207: FilesAnswerSerializer,
        },
        summary="Classify image files or an image URL",
        description="202 with the queued job; with `?wait=N`, 201 with the result when the job ends within N "
        "seconds (one request instead of an upload and a poll), else 202 as without it. Several `image` "
        "parts get 207 with one answer per file, in the order sent: the good files are queued even when "
        "others are refused (400 only when none is good).",
        examples=examples.UPLOAD,
    )
    def post(self, request):
        wait = wait_seconds(request)
        form = upload_form(request)
        if not form.is_valid():
            return Response(form_errors(form), status=status.HTTP_400_BAD_REQUEST)
        if len(form.checked) > 1:
            return self.several(request, form, wait)
        (data, fields), *_ = form.submissions()
        try:
            classification = dispatch.submit(data, owner=request.user, **fields)
        except ServiceUnavailable as exc:
            return unavailable(exc)
        if wait and wait_for_end(classification.pk, wait):
            classification = Classification.by_pk(classification.pk)
        body = ClassificationSerializer(classification, context={"request": request}).data
        answer = status.HTTP_201_CREATED if classification.is_finished else status.HTTP_202_ACCEPTED
        return Response(
            body, status=answer, headers={"Location": detail_url(request, classification)}
        )

    def several(self, request, form, wait: float):
        """One answer per file, in the order sent: good files are queued whatever happens to
        the others, each refused file says why."""
        answers, unavailable_error = [], None
        for checked in form.checked:
            if checked.refusal:
                answers.append({"filename": checked.name, "status": 400, "detail": checked.refusal})
                continue
            try:
                classification = dispatch.submit(
                    checked.data, owner=request.user, filename=checked.name
                )
            except ServiceUnavailable as exc:
                unavailable_error = exc
                answers.append({"filename": checked.name, "status": 503, "detail": str(exc)})
                continue
            answers.append({"filename": checked.name, "classification": classification})
        if not any("classification" in answer for answer in answers) and unavailable_error:
            return unavailable(unavailable_error)
        deadline = time.monotonic() + wait
        for answer in answers:
            if "classification" not in answer:
                continue
            job = answer.pop("classification")
            left = deadline - time.monotonic()
            if left > 0 and wait_for_end(job.pk, left):
                job = Classification.by_pk(job.pk)
            answer["status"] = 201 if job.is_finished else 202
            answer["classification"] = ClassificationSerializer(
                job, context={"request": request}
            ).data
        return Response({"files": answers}, status=status.HTTP_207_MULTI_STATUS)


def detail_url(request, classification) -> str:
    return request.build_absolute_uri(
        reverse("api:classification-detail", args=[classification.pk])
    )


def unavailable(exc: ServiceUnavailable) -> Response:
    return Response(
        {"detail": str(exc)},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class ClassificationDetailView(APIView):
    throttle_scope = "read"

    @extend_schema(
        responses=ClassificationSerializer,
        summary="One result (poll until finished, or wait for it)",
        description="An unfinished job's answer waits up to `wait` seconds for the job to end (a long poll): "
        "a client polling in a loop gets the result as soon as it exists, in one request instead of many.",
        parameters=[POLL_WAIT_PARAMETER],
        examples=examples.DETAIL,
    )
    def get(self, request, pk):
        classification = access.visible_classification(request, pk)
        wait = wait_seconds(request, default=settings.API_POLL_WAIT)
        if wait and not classification.is_finished and wait_for_end(classification.pk, wait):
            classification = Classification.by_pk(classification.pk)
        return Response(ClassificationSerializer(classification, context={"request": request}).data)

    @extend_schema(
        responses={204: None},
        summary="Move a result to the trash",
        description=f"It leaves the lists at once and stays restorable for {settings.TRASH_DAYS} "
        "days (`trash/`); `DELETE trash/{id}/` deletes it and its image for good.",
    )
    def delete(self, request, pk):
        classification = access.visible_classification(request, pk)
        if not access.is_owner(request, classification):
            raise Http404
        classification.move_to_trash(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrashSerializer(ClassificationSerializer):
    trashed_at = serializers.DateTimeField()

    class Meta(ClassificationSerializer.Meta):
        fields = (*ClassificationSerializer.Meta.fields, "trashed_at")

    def to_representation(self, obj):
        return {
            **super().to_representation(obj),
            "trashed_at": self.datetime_field.to_representation(obj.trashed_at),
        }


class TrashListView(APIView):
    @extend_schema(responses=TrashSerializer(many=True), summary="My trash, last deleted first")
    def get(self, request):
        items = Classification.trash_of(request.user)
        return Response(TrashSerializer(items, many=True, context={"request": request}).data)

    @extend_schema(
        responses={204: None}, summary="Empty my trash: results and images gone for good"
    )
    def delete(self, request):
        Classification.empty_trash(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrashDetailView(APIView):
    @extend_schema(
        operation_id="trash_purge",
        responses={204: None},
        summary="Delete a trashed result and its image for good",
    )
    def delete(self, request, pk):
        access.trashed_classification(request, pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrashRestoreView(APIView):
    @extend_schema(
        request=None, responses=ClassificationSerializer, summary="Put a trashed result back"
    )
    def post(self, request, pk):
        classification = access.trashed_classification(request, pk)
        classification.restore(request.user)
        return Response(ClassificationSerializer(classification, context={"request": request}).data)


class ClassificationImageView(APIView):
    throttle_scope = "read"

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY}, summary="The uploaded image")
    def get(self, request, pk):
        classification = access.visible_classification(request, pk)
        return access.image_response(classification)


class ClassificationHeatmapView(APIView):
    throttle_scope = "read"

    @extend_schema(
        responses={
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            202: inline_serializer(
                "HeatmapPending",
                {"status": serializers.CharField(), "detail": serializers.CharField()},
            ),
            409: inline_serializer(
                "HeatmapUnavailable",
                {"status": serializers.CharField(), "detail": serializers.CharField()},
            ),
        },
        summary="Grad-CAM heatmap of the top class over the image",
        description="Made by a worker on the first request: 202 with Retry-After until it is stored, then "
        "the JPEG overlay. 409 when the result is unfinished or failed, or no heatmap can be made.",
    )
    def get(self, request, pk):
        return access.heatmap_response(access.visible_classification(request, pk))


class FeedbackSerializer(serializers.Serializer):
    label = serializers.CharField(
        max_length=100, help_text="The right label (one of the model's classes, or a new one)."
    )


class ClassificationFeedbackView(APIView):
    throttle_scope = "read"  # a small write, as cheap as a read

    def owned(self, request, pk):
        classification = access.visible_classification(request, pk)
        if not access.is_owner(request, classification):
            raise Http404
        return classification

    @extend_schema(
        request=FeedbackSerializer,
        responses=ClassificationSerializer,
        summary="Say the result is wrong and give the right label",
    )
    def post(self, request, pk):
        classification = self.owned(request, pk)
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            classification.correct(serializer.validated_data["label"])
        except ValueError as exc:
            raise exceptions.ValidationError({"label": [str(exc)]}) from None
        return Response(ClassificationSerializer(classification, context={"request": request}).data)

    @extend_schema(responses={204: None}, summary="Take a correction back")
    def delete(self, request, pk):
        self.owned(request, pk).correct(None)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SharedHistoryView(APIView):
    """A history its owner shares with the caller (read-only), with the same filters and pages."""

    throttle_scope = "read"

    @extend_schema(
        operation_id="shared_classifications_list",
        parameters=LIST_PARAMETERS,
        responses=PageSerializer,
        summary="A history shared with me",
        examples=examples.PAGE,
    )
    def get(self, request, username):
        owner = Share.sharing_owner(username, request.user)
        if owner is None:
            raise exceptions.NotFound()
        return page_response(request, filtered(request, owner))


class ModelVersionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    validation_accuracy = serializers.FloatField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = (
            "id",
            "name",
            "version",
            "architecture",
            "class_names",
            "input_height",
            "input_width",
            "validation_accuracy",
            "is_active",
            "created_at",
            "activated_at",
        )
        read_only_fields = fields


class ActiveModelSerializer(ModelVersionSerializer):
    metrics = serializers.SerializerMethodField()

    class Meta(ModelVersionSerializer.Meta):
        fields = ModelVersionSerializer.Meta.fields + ("metrics",)
        read_only_fields = fields

    def get_metrics(self, version) -> dict:
        """The training report's figures, without the int8 copy's answers on the probe images
        (1,280 numbers that only workers use, to recognise their conversion)."""
        if "int8" not in version.metrics:
            return version.metrics
        return {
            **version.metrics,
            "int8": {
                key: value for key, value in version.metrics["int8"].items() if key != "probe"
            },
        }


class ModelVersionListView(APIView):
    throttle_scope = "read"

    @extend_schema(
        operation_id="models_list",
        responses=ModelVersionSerializer(many=True),
        summary="Model versions",
        examples=examples.MODELS,
    )
    def get(self, request):
        return Response(
            ModelVersionSerializer(ModelVersion.objects.order_by("-created_at"), many=True).data
        )


class ActiveModelView(APIView):
    throttle_scope = "read"

    @extend_schema(
        responses=ActiveModelSerializer,
        summary="The active model: classes and metrics",
        examples=examples.ACTIVE,
    )
    def get(self, request):
        active = ModelVersion.active()
        if active is None:
            raise exceptions.NotFound("No model version is active.")
        return Response(ActiveModelSerializer(active).data)

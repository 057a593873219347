from django.contrib import admin, messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from imageclass import converters  # noqa: F401  (registers <objectid:...>)
from imageclass.dispatch import QueueUnavailable
from imageclass.storage import STORAGE_ERRORS
from mltrain import dispatch
from mltrain.forms import MIN_VALIDATION_IMAGES, TrainingJobForm
from mltrain.models import TrainingJob


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "status",
        "epoch",
        "classes",
        "model_version",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in TrainingJob._meta.fields if f.name != "id"] + ["result"]
    actions = ["activate", "retry"]
    change_form_template = "admin/mltrain/trainingjob/change_form.html"

    @admin.display(description="epoch")
    def epoch(self, obj):
        return f"{obj.progress['epoch']}/{obj.progress['epochs']}" if obj.progress else "—"

    @admin.display(description="classes")
    def classes(self, obj):
        return len(obj.class_counts)

    @admin.display(description="trained model")
    def result(self, obj):
        if not obj.model_version_id:
            return "—"
        url = reverse("admin:classifier_modelversion_change", args=[obj.model_version_id])
        return format_html('<a href="{}">{}</a>', url, obj.model_version)

    def get_urls(self):
        return [
            path(
                "new/",
                self.admin_site.admin_view(self.start_view),
                name="mltrain_trainingjob_start",
            ),
            path(
                "<objectid:pk>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="mltrain_trainingjob_progress",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:mltrain_trainingjob_start")

    def start_view(self, request):
        """Upload a zip of class folders and start a training job on the training queue."""
        if not self.has_add_permission(request):
            raise Http404
        form = TrainingJobForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = dispatch.start_training(
                    form.cleaned_data["dataset"],
                    form.summary,
                    name=form.cleaned_data["name"],
                    config=form.config(),
                    activate_when_done=form.cleaned_data["activate_when_done"],
                    created_by=request.user,
                )
            except (QueueUnavailable, *STORAGE_ERRORS) as exc:
                form.add_error(
                    None,
                    str(exc)
                    if isinstance(exc, QueueUnavailable)
                    else "Storage is unavailable; please try again shortly.",
                )
                return self.start_page(request, form, status=503)
            self.log_addition(request, job, "Started training")
            if thin := form.thin_classes():
                listed = ", ".join(f"{name} ({n})" for name, n in sorted(thin.items()))
                self.message_user(
                    request,
                    f"Few validation images: {listed}. Fewer than {MIN_VALIDATION_IMAGES} per "
                    "class make its accuracy a coarse figure; add images for a trustworthy one.",
                    messages.WARNING,
                )
            self.message_user(
                request,
                f"Training of {job.name} queued: {form.summary.images} images in {len(form.summary.class_counts)} classes.",
            )
            return redirect("admin:mltrain_trainingjob_change", job.pk)
        return self.start_page(request, form)

    def start_page(self, request, form, status=200):
        context = {
            **self.admin_site.each_context(request),
            "title": "Train a model on your own classes",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/mltrain/trainingjob/start.html", context, status=status
        )

    def progress_view(self, request, pk):
        job = TrainingJob.objects.filter(pk=pk).first()
        if job is None or not self.has_view_permission(request, job):
            raise Http404
        return JsonResponse(job.progress_payload())

    @admin.action(description="Activate the model each selected job trained")
    def activate(self, request, queryset):
        jobs = [job for job in queryset if job.model_version_id]
        if len(jobs) != 1:
            self.message_user(request, "Select exactly one finished job.", messages.ERROR)
            return
        version = jobs[0].model_version
        version.activate(request.user)
        self.log_change(request, version, f"Activated {version}")
        self.message_user(request, f"{version} is now the active model.")

    @admin.action(description="Retry the selected failed jobs")
    def retry(self, request, queryset):
        try:
            retried = sum(dispatch.retry_training(job) for job in queryset)
        except QueueUnavailable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{retried} job(s) queued again.")

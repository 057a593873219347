from django.contrib import admin, messages
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from classifier.models import Classification, ModelVersion, models_storage
from classifier.views import stored_file_response, thumbnail_response

REPORT_IMAGES = ("curves.png", "confusion_matrix.png")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "architecture", "accuracy", "classes", "is_active", "created_at", "activated_at", "activated_by")
    list_filter = ("is_active", "name")
    readonly_fields = [f.name for f in ModelVersion._meta.fields] + ["report"]
    actions = ["activate"]

    @admin.display(description="validation accuracy")
    def accuracy(self, obj):
        return f"{obj.validation_accuracy:.2%}" if obj.validation_accuracy is not None else "—"

    @admin.display(description="classes")
    def classes(self, obj):
        return len(obj.class_names)

    @admin.display(description="report")
    def report(self, obj):
        images = [
            (reverse("admin:classifier_modelversion_report", args=[obj.pk, name]), name)
            for name in REPORT_IMAGES
            if name in obj.report_keys
        ]
        return format_html_join("", '<img src="{}" alt="{}" style="max-width: 480px; display: block; margin-bottom: 1em">', images) or "—"

    def get_urls(self):
        return [
            path("<str:pk>/report/<str:name>", self.admin_site.admin_view(self.report_file), name="classifier_modelversion_report"),
            *super().get_urls(),
        ]

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

    def has_add_permission(self, request):
        return False  # versions come from `manage.py publish`


@admin.register(Classification)
class ClassificationAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "original_filename", "owner", "status", "top_label", "top_probability", "model_name", "created_at")
    list_filter = ("status", "top_label", "format", "model_name")
    search_fields = ("original_filename", "owner__username", "top_label")
    raw_id_fields = ("owner", "model_version")
    readonly_fields = ("thumbnail",) + tuple(f.name for f in Classification._meta.fields if f.name != "id")
    date_hierarchy = "created_at"

    @admin.display(description="image")
    def thumbnail(self, obj):
        url = reverse("admin:classifier_classification_image", args=[obj.pk])
        return format_html('<img src="{}" alt="" style="height: 48px; width: 48px; object-fit: cover">', url)

    def get_urls(self):
        return [
            path("<str:pk>/image", self.admin_site.admin_view(self.image), name="classifier_classification_image"),
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

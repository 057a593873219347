from django.contrib import admin, messages

from classifier.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "architecture", "accuracy", "is_active", "created_at", "activated_at")
    list_filter = ("is_active", "name")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["activate"]

    @admin.display(description="validation accuracy")
    def accuracy(self, obj):
        return f"{obj.validation_accuracy:.2%}" if obj.validation_accuracy is not None else "—"

    @admin.action(description="Activate the selected version (one)")
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

from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.models import Group, Permission

from accounts.models import Share, User


def permission_choices():
    """Permissions for the admin's pickers, their content types prefetched rather than joined:
    Django's admin joins them (select_related), and the embedded engine replaces the joined
    content type with the fields the order reads, so `Permission.__str__` failed (a 500)."""
    return Permission.objects.prefetch_related("content_type")


class UserChangeForm(auth_forms.UserChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "user_permissions" in self.fields:
            self.fields["user_permissions"].queryset = permission_choices()


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    form = UserChangeForm


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(auth_admin.GroupAdmin):
    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        if db_field.name == "permissions":
            kwargs["queryset"] = permission_choices()
            return admin.ModelAdmin.formfield_for_manytomany(self, db_field, request, **kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ("owner", "grantee", "created_at")
    search_fields = ("owner__username", "grantee__username")
    raw_id_fields = ("owner", "grantee")

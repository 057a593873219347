from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Share, User

admin.site.register(User, UserAdmin)


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ("owner", "grantee", "created_at")
    search_fields = ("owner__username", "grantee__username")
    raw_id_fields = ("owner", "grantee")

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import forms as auth_forms
from django.core.exceptions import ValidationError

from accounts import throttle
from accounts.models import User


class SignupForm(auth_forms.UserCreationForm):
    email = forms.EmailField(help_text="Used to reset your password; never shown to others.")

    class Meta:
        model = User
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError("An account with this email address already exists.")
        return email


def wait_text(seconds: int) -> str:
    return f"{seconds} second(s)" if seconds < 60 else f"{-(-seconds // 60)} minute(s)"


class ThrottledLogin:
    """A login form's check run under the lockout rules (accounts.throttle); a refusal says
    when to try again and marks the form `throttled` (HTTP 429)."""

    throttled = False

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        try:
            return throttle.attempt(username, throttle.client_address(self.request), super().clean)
        except throttle.LockedOut as locked:
            self.throttled = True
            raise ValidationError(
                "Too many failed login attempts. Try again in %(wait)s.",
                code="throttled",
                params={"wait": wait_text(locked.seconds)},
            ) from None


class ThrottledAuthenticationForm(ThrottledLogin, auth_forms.AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLogin, AdminAuthenticationForm):
    pass


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("first_name", "last_name", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError("An account with this email address already exists.")
        return email

from django import forms
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


class ThrottledAuthenticationForm(auth_forms.AuthenticationForm):
    """The login form, refusing attempts while the username or the address is locked out."""

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "throttled": "Too many failed login attempts. Try again in %(minutes)s minute(s).",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        try:
            return throttle.attempt(username, throttle.client_address(self.request), super().clean)
        except throttle.LockedOut as locked:
            self.throttled = True
            raise ValidationError(
                self.error_messages["throttled"], code="throttled", params={"minutes": -(-locked.seconds // 60)}
            ) from None


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("first_name", "last_name", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError("An account with this email address already exists.")
        return email

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts import throttle
from accounts.forms import ProfileForm, SignupForm, ThrottledAuthenticationForm, wait_text
from accounts.models import ApiToken, Share
from imageclass.throttling import hit, parse_rate, web_wait


def too_many_requests(request, seconds: float):
    wait = wait_text(max(1, math.ceil(seconds)))
    response = render(request, "too_many_requests.html", {"wait": wait}, status=429)
    response["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("profile")
    # The API sign-up's throttle: each try also says whether an email is registered.
    if request.method == "POST" and (wait := web_wait(request, "auth")):
        return too_many_requests(request, wait)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


class PasswordResetView(auth_views.PasswordResetView):
    """Reset mails throttled per client address (a 429) and per target email (silently, with
    the same answer as a sent mail: whether an account has the email stays unsaid)."""

    extra_email_context = {"site_name": settings.SITE_NAME}

    def post(self, request, *args, **kwargs):
        address = f"password-reset:address:{throttle.client_address(request)}"
        if wait := hit([(address, *parse_rate(settings.PASSWORD_RESET_RATE_ADDRESS))]):
            return too_many_requests(request, wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        email = f"password-reset:email:{throttle.digest(form.cleaned_data['email'])}"
        if hit([(email, *parse_rate(settings.PASSWORD_RESET_RATE_EMAIL))]):
            return redirect(self.get_success_url())
        return super().form_valid(form)


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", False):
            response.status_code = 429
        return response


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile was saved.")
        return redirect("profile")
    return render(request, "accounts/profile.html", profile_context(request, form))


def profile_context(request, form, new_token: str = "") -> dict:
    return {
        "form": form,
        "shares": Share.objects.filter(owner=request.user).select_related("grantee"),
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at"),
        "new_token": new_token,
    }


@login_required
@require_POST
def token_create(request):
    """A new named API token, shown on this one page and never again (only its hash is kept):
    rendered, not redirected, so it is stored nowhere on the way."""
    name = request.POST.get("name", "").strip()
    if not name:
        messages.error(request, "Give the token a name, such as the device that will use it.")
        return redirect(reverse("profile") + "#tokens")
    key = ApiToken.issue(request.user, name)
    response = render(
        request,
        "accounts/profile.html",
        profile_context(request, ProfileForm(instance=request.user), new_token=key),
        status=201,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request, pk):
    try:
        token = ApiToken.objects.get(pk=pk, user=request.user)
    except (ApiToken.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404 from None
    token.delete()
    messages.success(request, f"The token {token.name or '(unnamed)'} was revoked.")
    return redirect(reverse("profile") + "#tokens")


@login_required
@require_POST
def share_grant(request):
    try:
        share = Share.grant(request.user, request.POST.get("username", ""))
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"{share.grantee.username} can now see your history (read-only).")
    return redirect("profile")


@login_required
@require_POST
def share_revoke(request, pk):
    try:
        deleted, _ = Share.objects.filter(pk=pk, owner=request.user).delete()
    except (ValidationError, ValueError, TypeError):
        deleted = 0
    if not deleted:
        raise Http404
    messages.success(request, "Access revoked.")
    return redirect("profile")

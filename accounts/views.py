from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.core.exceptions import ValidationError
from django.http import Http404
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import ProfileForm, SignupForm, ThrottledAuthenticationForm
from accounts.models import Share


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("profile")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


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
    shares = Share.objects.filter(owner=request.user).select_related("grantee")
    return render(request, "accounts/profile.html", {"form": form, "shares": shares})


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

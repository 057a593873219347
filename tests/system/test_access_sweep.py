"""Every web and API route, with every kind of visitor: alice (owns the result), bob (alice
shares her history with him), charlie (no access), an anonymous visitor, and dave (deactivated,
who still holds a session cookie and an API token from before). The expected status of each
(route, visitor) is written out below, so a route added without an access decision fails
`test_every_route_is_swept`."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import ApiToken, Share
from classifier.tasks import classify
from tests import badimages
from tests.conftest import PASSWORD

VISITORS = ("alice", "bob", "charlie", "anonymous", "deactivated")
LOGIN = "login"  # web pages that need an account redirect to the login page

# route name -> (method, path template, {visitor: status}); {pk} is alice's result, {share}
# her grant to bob. Read-only web pages answer 404 to anyone who may not see the result, so
# its existence is not revealed; the API answers 401 without valid credentials. One row per
# route, unwrapped: the tables read as tables.
# fmt: off
WEB = {
    "result": ("get", "/c/{pk}/", dict(alice=200, bob=200, charlie=404, anonymous=404, deactivated=404)),
    "result_status": ("get", "/c/{pk}/status", dict(alice=200, bob=200, charlie=404, anonymous=404, deactivated=404)),
    "result_image": ("get", "/c/{pk}/image", dict(alice=200, bob=200, charlie=404, anonymous=404, deactivated=404)),
    "result_thumbnail": ("get", "/c/{pk}/thumbnail", dict(alice=200, bob=200, charlie=404, anonymous=404, deactivated=404)),
    "result_heatmap": ("get", "/c/{pk}/heatmap", dict(alice=202, bob=202, charlie=404, anonymous=404, deactivated=404)),
    "feedback": ("post", "/c/{pk}/feedback", dict(alice=302, bob=404, charlie=404, anonymous=404, deactivated=404)),
    "delete": ("post", "/c/{pk}/delete", dict(alice=302, bob=404, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "batch": ("get", "/batch/?ids={pk}", dict(alice=200, bob=200, charlie=200, anonymous=200, deactivated=200)),
    "results_status": ("get", "/results/status?ids={pk}", dict(alice=200, bob=200, charlie=200, anonymous=200, deactivated=200)),
    "token_create": ("post", "/accounts/tokens/", dict(alice=302, bob=302, charlie=302, anonymous=LOGIN, deactivated=LOGIN)),
    "token_revoke": ("post", "/accounts/tokens/{token}/revoke", dict(alice=302, bob=404, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "trash": ("get", "/trash/", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
    "trash_empty": ("post", "/trash/empty", dict(alice=302, bob=302, charlie=302, anonymous=LOGIN, deactivated=LOGIN)),
    "trash_thumbnail": ("get", "/trash/{pk}/thumbnail", dict(alice=404, bob=404, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "trash_restore": ("post", "/trash/{pk}/restore", dict(alice=404, bob=404, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "trash_purge": ("post", "/trash/{pk}/purge", dict(alice=404, bob=404, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "history": ("get", "/history/", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
    "delete_many": ("post", "/history/delete", dict(alice=302, bob=302, charlie=302, anonymous=LOGIN, deactivated=LOGIN)),
    "export": ("get", "/history/export.csv", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
    "shared": ("get", "/shared/", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
    "shared_history": ("get", "/shared/alice/", dict(alice=404, bob=200, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "profile": ("get", "/accounts/profile/", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
    "share_grant": ("post", "/accounts/shares/", dict(alice=302, bob=302, charlie=302, anonymous=LOGIN, deactivated=LOGIN)),
    "share_revoke": ("post", "/accounts/shares/{share}/revoke", dict(alice=302, bob=404, charlie=404, anonymous=LOGIN, deactivated=LOGIN)),
    "password_change": ("get", "/accounts/password/change/", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
    "password_change_done": ("get", "/accounts/password/change/done/", dict(alice=200, bob=200, charlie=200, anonymous=LOGIN, deactivated=LOGIN)),
}
API = {
    "api:classification-detail": ("get", "/api/v1/classifications/{pk}/", dict(alice=200, bob=200, charlie=404, anonymous=401, deactivated=401)),
    "api:classification-image": ("get", "/api/v1/classifications/{pk}/image/", dict(alice=200, bob=200, charlie=404, anonymous=401, deactivated=401)),
    "api:classification-heatmap": ("get", "/api/v1/classifications/{pk}/heatmap/", dict(alice=202, bob=202, charlie=404, anonymous=401, deactivated=401)),
    "api:classification-feedback": ("post", "/api/v1/classifications/{pk}/feedback/", dict(alice=400, bob=404, charlie=404, anonymous=401, deactivated=401)),
    "api:classification-list": ("get", "/api/v1/classifications/", dict(alice=200, bob=200, charlie=200, anonymous=401, deactivated=401)),
    "api:shared-history": ("get", "/api/v1/shared/alice/classifications/", dict(alice=404, bob=200, charlie=404, anonymous=401, deactivated=401)),
    "api:share-list": ("get", "/api/v1/shares/", dict(alice=200, bob=200, charlie=200, anonymous=401, deactivated=401)),
    "api:share-detail": ("delete", "/api/v1/shares/{share}/", dict(alice=204, bob=404, charlie=404, anonymous=401, deactivated=401)),
    "api:trash-list": ("get", "/api/v1/trash/", dict(alice=200, bob=200, charlie=200, anonymous=401, deactivated=401)),
    "api:trash-detail": ("delete", "/api/v1/trash/{pk}/", dict(alice=404, bob=404, charlie=404, anonymous=401, deactivated=401)),
    "api:trash-restore": ("post", "/api/v1/trash/{pk}/restore/", dict(alice=404, bob=404, charlie=404, anonymous=401, deactivated=401)),
    "api:me": ("get", "/api/v1/me/", dict(alice=200, bob=200, charlie=200, anonymous=401, deactivated=401)),
    "api:model-list": ("get", "/api/v1/models/", dict(alice=200, bob=200, charlie=200, anonymous=401, deactivated=401)),
    "api:model-active": ("get", "/api/v1/models/active/", dict(alice=200, bob=200, charlie=200, anonymous=401, deactivated=401)),
}
# Open to everyone by design: sign-up, login, password reset, health, API docs, home, token.
PUBLIC = {
    "favicon", "healthz", "readyz", "schema", "api-docs", "home", "signup", "login", "logout", "password_reset",
    "password_reset_done", "password_reset_confirm", "password_reset_complete", "api:register", "api:token",
}
# fmt: on


def route_names(patterns=None, namespace=None):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # Django's admin: staff only, swept in test_admin_is_staff_only
            yield from route_names(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_every_route_is_swept():
    assert set(route_names()) == set(WEB) | set(API) | PUBLIC


@pytest.fixture
def world(alice, bob, charlie, active_model):
    from classifier.models import Classification

    dave = get_user_model().objects.create_user("dave", "dave@example.com", PASSWORD)
    result = Classification.store(badimages.jpeg(), owner=alice, filename="alice-secret-cat.jpg")
    classify.apply(args=[str(result.pk)])
    share = Share.grant(alice, "bob")
    web, api = {}, {}
    for user in (alice, bob, charlie, dave):
        web[user.username] = Client()
        web[user.username].force_login(user)
        api[user.username] = APIClient()
        api[user.username].credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)}")
    dave.is_active = False
    dave.save()
    web["deactivated"], api["deactivated"] = web.pop("dave"), api.pop("dave")
    web["anonymous"], api["anonymous"] = Client(), APIClient()
    token = ApiToken.objects.filter(user=alice).first()
    return {
        "pk": str(result.pk),
        "share": str(share.pk),
        "token": str(token.pk),
        "web": web,
        "api": api,
        "result": result,
    }


def request(client, method, path, world):
    path = path.format(pk=world["pk"], share=world["share"], token=world["token"])
    data = (
        {"ids": [world["pk"]]}
        if path.endswith("/history/delete")
        else {"username": "charlie"}
        if path.endswith("/accounts/shares/")
        else {}
    )
    return (
        getattr(client, method)(path, data) if method == "post" else getattr(client, method)(path)
    )


def sweep(world, clients, method, path, expected):
    """Each visitor in turn (alice last: her request may delete or revoke); returns what
    differed from `expected` as {visitor: status}."""
    differences = {}
    for visitor in sorted(VISITORS, key=lambda v: v == "alice"):
        response = request(clients[visitor], method, path, world)
        got = response.status_code
        if got == 302 and response["Location"].startswith("/accounts/login/"):
            got = LOGIN
        if got != expected[visitor]:
            differences[visitor] = got
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if visitor not in ("alice", "bob"):
            assert b"alice-secret-cat" not in body, (
                f"{visitor} saw alice's result"
            )  # in no page or export
    return differences


@pytest.mark.parametrize("name", list(WEB))
def test_web_route(world, name):
    method, path, expected = WEB[name]
    assert sweep(world, world["web"], method, path, expected) == {}


@pytest.mark.parametrize("name", list(API))
def test_api_route(world, name):
    method, path, expected = API[name]
    assert sweep(world, world["api"], method, path, expected) == {}


@pytest.mark.parametrize(
    "visitor, status",
    [("bob", 404), ("charlie", 404), ("anonymous", 401), ("deactivated", 401), ("alice", 204)],
)
def test_only_the_owner_deletes_through_the_api(world, visitor, status):
    from classifier.models import Classification

    response = world["api"][visitor].delete(f"/api/v1/classifications/{world['pk']}/")
    assert response.status_code == status
    trashed = Classification.by_pk(world["pk"]).trashed_by_id is not None
    assert trashed == (visitor == "alice")


@pytest.mark.parametrize("visitor", ["bob", "charlie", "anonymous", "deactivated"])
def test_others_cannot_delete_through_the_web(world, visitor):
    from classifier.models import Classification

    world["web"][visitor].post(f"/c/{world['pk']}/delete")
    world["web"][visitor].post("/history/delete", {"ids": [world["pk"]]})
    assert Classification.by_pk(world["pk"]).trashed_by_id is None


def test_admin_is_staff_only(world):
    for visitor in VISITORS:
        response = world["web"][visitor].get("/admin/classifier/classification/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"], visitor

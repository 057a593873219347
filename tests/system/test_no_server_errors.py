"""No input gets a 5xx: every URL pattern the resolver knows (web, API, admin) is requested by a
superuser with malformed ids and out-of-range query values, so a route added later is swept
without a line here; every HTML page it gets has the Content-Security-Policy. Under /api/ every
error, even one Django raises before DRF runs, is JSON."""

import json
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from tests import badimages
from tests.conftest import api_client_for, make_result

MALFORMED = ("notanid", "$ne", "x" * 3000)
OUT_OF_RANGE = [
    {"created_before": "9999-12-31"},
    {"created_after": "0001-01-01"},
    {"created_after": "0001-01-01T00:00:00+14:00"},
    {"created_before": "9999-12-31T23:59:59-14:00"},
    {"created_after": "2026-13-45"},
    {"cursor": "o:" + "A" * 40},
    {"older": "MDAwMS0wMS0wMXww"},
    {"min_probability": "1e999"},
    {"wait": "nan"},
    {"p": "-1"},
    {"o": "99"},
    {"q": "\x00$where"},
    {"created_at__gte": "99999-01-01"},
]
VALUE = "{value}"
PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def route_templates(patterns=None, prefix=""):
    """Every route as a path template, its parameters as VALUE; regex routes filled with the
    first value their group admits."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = str(pattern.pattern)
        if not route.startswith("^") and "(?P<" not in route:
            # An <objectid:...> admits no malformed id: it gets a well-formed one of nothing.
            route = PARAMETER.sub(lambda m: "0" * 24 if m.group(1) == "objectid" else VALUE, route)
        else:
            route = re.sub(
                r"\(\?P<\w+>([\w]+)(?:\|[^)]*)?\)", r"\1", route
            )  # an alternation: its first
            route = re.sub(r"\(\?P<\w+>[^)]*\)", VALUE, route).strip("^$")
        if isinstance(pattern, URLResolver):
            yield from route_templates(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield "/" + prefix + route


def paths(template: str):
    return (
        [template.replace(VALUE, value) for value in MALFORMED] if VALUE in template else [template]
    )


@pytest.fixture
def root(django_user_model, alice, active_model):
    make_result(alice)
    return django_user_model.objects.create_superuser(
        "root", "root@example.com", "a long admin passphrase"
    )


def test_no_route_answers_5xx(root):
    client = Client(raise_request_exception=False)
    client.force_login(root)
    failures = []
    templates = sorted(set(route_templates()))
    assert len(templates) > 90  # the resolver's own routes, admin included
    for template in templates:
        for number, path in enumerate(paths(template)):
            queries = OUT_OF_RANGE if number == 0 else [{}]
            for query in [{}, *queries]:
                response = client.get(path, query)
                if response.status_code >= 500:
                    failures.append(f"GET {path[:80]} {query} -> {response.status_code}")
                if response.get("Content-Type", "").startswith(
                    "text/html"
                ) and "script-src 'self'" not in response.get("Content-Security-Policy", ""):
                    failures.append(
                        f"GET {path[:80]} {query}: an HTML page without the Content-Security-Policy"
                    )
            response = client.post(path, {"ids": ["$ne"], "image_url": "x", "username": "$ne"})
            if response.status_code >= 500:
                failures.append(f"POST {path[:80]} -> {response.status_code}")
            client.force_login(root)  # a POST may have logged out
    assert failures == [], "\n".join(failures)


def test_admin_forms_with_permission_pickers_render(root):
    client = Client()
    client.force_login(root)
    for path in ("/admin/auth/group/add/", f"/admin/accounts/user/{root.pk}/change/"):
        response = client.get(path)
        assert (
            response.status_code == 200
            and b"Accounts | api token | Can add api token" in response.content
        )


@pytest.mark.parametrize(
    "value", ["9999-12-31", "0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z"]
)
@pytest.mark.parametrize("field", ["created_before", "created_after"])
def test_dates_at_the_calendars_ends_are_no_error(alice, bob, field, value):
    from accounts.models import Share

    make_result(alice)
    Share.grant(alice, "bob")
    web = Client()
    web.force_login(alice)
    for path in ("/history/", "/history/export.csv", "/history/export.json"):
        assert web.get(path, {field: value}).status_code == 200, path
    for api, path in (
        (api_client_for(alice), "/api/v1/classifications/"),
        (api_client_for(bob), "/api/v1/shared/alice/classifications/"),
    ):
        assert api.get(path, {field: value}).status_code == 200, path


def test_date_filters_take_dates_and_moments_with_zones(alice):
    now = timezone.now().replace(microsecond=0)
    old = make_result(alice, created_at=now - timedelta(days=3))
    new = make_result(alice, created_at=now)
    api = api_client_for(alice)

    def listed(**query):
        response = api.get("/api/v1/classifications/", query)
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["results"]]

    moment = now - timedelta(days=1)
    assert listed(created_after=moment.strftime("%Y-%m-%dT%H:%M:%SZ")) == [str(new.pk)]
    shifted = moment.astimezone(timezone.get_fixed_timezone(120)).isoformat()  # +02:00
    assert listed(created_after=shifted) == [str(new.pk)]
    assert listed(created_before=shifted) == [str(old.pk)]
    assert listed(created_before=now.isoformat()) == [
        str(new.pk),
        str(old.pk),
    ]  # on or before: inclusive
    assert listed(created_after=(now - timedelta(days=3)).date().isoformat()) == [
        str(new.pk),
        str(old.pk),
    ]
    response = api.get("/api/v1/classifications/", {"created_after": "yesterday"})
    assert response.status_code == 400 and "created_after" in response.json()


def test_schema_documents_both_date_forms(alice):
    schema = api_client_for(alice).get("/api/schema/?format=json").json()
    parameters = {
        p["name"]: p for p in schema["paths"]["/api/v1/classifications/"]["get"]["parameters"]
    }
    formats = {option["format"] for option in parameters["created_after"]["schema"]["oneOf"]}
    assert formats == {"date", "date-time"}


def test_errors_django_raises_before_drf_are_json(alice):
    api = api_client_for(alice)
    files = {
        "image": [
            SimpleUploadedFile(f"{n}.jpg", badimages.jpeg((8, 8)), "image/jpeg") for n in range(50)
        ]
    }
    response = api.post("/api/v1/classifications/", files, format="multipart")
    assert response.status_code == 400 and "files" in response.json()["detail"]
    big = json.dumps({"image_url": "x" * (3 * 1024 * 1024)})
    response = api.post("/api/v1/classifications/", big, content_type="application/json")
    assert response.status_code == 413 and response.json()["detail"]
    fields = "&".join(f"field{n}=x" for n in range(1001))
    response = api.post(
        "/api/v1/auth/token/", fields, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and "fields" in response.json()["detail"]
    response = api.get("/api/v1/me/", HTTP_HOST="evil.example")
    assert response.status_code == 400 and response.json() == {"detail": "Bad request."}
    response = api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert Client().get("/no-such-page/").headers["Content-Type"].startswith("text/html")

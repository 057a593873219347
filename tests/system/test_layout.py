import os
import re
import subprocess
import sys

from django.conf import settings


def test_home_page_uses_the_base_layout_with_vendored_assets(client, db):
    page = client.get("/").content.decode()
    assert "/static/vendor/bootstrap/bootstrap.min.css" in page
    assert "/static/vendor/bootstrap/bootstrap.bundle.min.js" in page
    assert "<nav" in page and "<footer" in page
    assert 'href="/accounts/login/"' in page and 'href="/accounts/signup/"' in page
    # The app must render offline: no asset from another host.
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_vendored_assets_are_served(client, db):
    for path in (
        "/static/vendor/bootstrap/bootstrap.min.css",
        "/static/vendor/bootstrap/bootstrap.bundle.min.js",
    ):
        response = client.get(path)
        assert response.status_code == 200
        assert b"Bootstrap" in b"".join(response.streaming_content)[:300]


def test_navigation_shows_the_signed_in_user(alice_client):
    page = alice_client.get("/").content.decode()
    assert "Signed in as <strong>alice</strong>" in page
    assert "Log out" in page


def test_web_process_never_imports_tensorflow():
    script = (
        "import sys, django; django.setup();"
        "from django.urls import resolve; resolve('/');"
        "import imageclass.urls;"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imageclass.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]", result.stderr

"""End to end in headless Chromium (Debian's, driven by Playwright) against a live server and a
real worker: sign up, upload, see the result arrive, see where the model looked, correct it,
find it by search, share it, and see it as the grantee."""

import os
import shutil

import pytest

from tests import badimages
from tests.conftest import PASSWORD
from tests.workers import start_worker, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop; the test's own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def worker(active_model, tmp_path):
    process = start_worker(tmp_path / "worker.log")
    yield process
    stop(process)


def test_sign_up_upload_search_share(live_server, browser, worker, bob, tmp_path):
    photo = tmp_path / "garden-cat.jpg"
    photo.write_bytes(badimages.jpeg((120, 90)))
    page = browser.new_page()
    page.set_default_timeout(20_000)

    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("#id_username", "dora")
    page.fill("#id_email", "dora@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Signed in as")

    page.set_input_files("input[name=images]", str(photo))
    page.click("text=Classify >> nth=-1")
    page.wait_for_selector("#status-badge[data-status=done]", timeout=90_000)  # arrives by itself
    top_label = page.inner_text("#top-label")
    assert top_label in {"blue", "green", "red"}
    assert page.locator("#top-predictions li").count() == 3
    page.screenshot(path=str(tmp_path / "result.png"))

    page.check("#heatmap-toggle")  # the worker makes the heatmap on this first request
    page.wait_for_function("document.getElementById('result-image').src.startsWith('blob:')", timeout=60_000)
    page.uncheck("#heatmap-toggle")
    assert "/image" in page.get_attribute("#result-image", "src")

    page.reload()
    other = next(label for label in ("blue", "green", "red") if label != top_label)
    page.fill("#feedback-label", other)
    page.click("text=Send correction")
    page.wait_for_selector(f"text=You said this is {other}")

    page.goto(f"{live_server.url}/history/?q=garden")
    assert page.locator(".history-card").count() == 1
    page.goto(f"{live_server.url}/history/?q=nothing-like-this")
    assert page.locator(".history-card").count() == 0

    page.goto(f"{live_server.url}/accounts/profile/")
    page.fill("#share-username", "bob")
    page.click("text=Share with them")
    page.wait_for_selector("text=bob can now see your history")

    grantee = browser.new_context().new_page()
    grantee.goto(f"{live_server.url}/accounts/login/")
    grantee.fill("#id_username", "bob")
    grantee.fill("#id_password", PASSWORD)
    grantee.click("button[type=submit]")
    grantee.goto(f"{live_server.url}/shared/")
    grantee.click("text=dora's history")
    assert grantee.locator(".history-card").count() == 1
    grantee.click(".history-card a")
    grantee.wait_for_selector("#status-badge[data-status=done]")
    assert grantee.inner_text("#top-label") == top_label

"""Real-browser fixtures: Debian's Chromium driven by Playwright against a live server, a
worker that classifies for it, and a signed-in page."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.workers import start_worker, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Where a failed test leaves a screenshot of each page it had open (var/ is not in git).
FAILURE_SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "browser-failures"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Browser:
    """Chromium whose pages report every Content-Security-Policy violation into `violations`."""

    def __init__(self, chromium):
        self.chromium = chromium
        self.violations = []
        self.contexts = []

    def new_page(self):
        return self.new_context().new_page()

    def new_context(self, **options):
        context = self.chromium.new_context(**options)
        context.on("console", self.console)
        self.contexts.append(context)
        return context

    def screenshots(self, test_name: str):
        FAILURE_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pages = [page for context in self.contexts for page in context.pages]
        for number, page in enumerate(pages):
            page.screenshot(
                path=str(FAILURE_SCREENSHOTS / f"{test_name}-{number}.png"), full_page=True
            )

    def console(self, message):
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)


@pytest.fixture
def browser(request):
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop; the test's own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        browser = Browser(chromium)
        yield browser
        if getattr(request.node, "report_call", None) and request.node.report_call.failed:
            browser.screenshots(request.node.name)
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    assert browser.violations == []  # on every page a test visited


@pytest.fixture
def worker(active_model, tmp_path):
    process = start_worker(tmp_path / "worker.log")
    yield process
    stop(process)


def sign_in(browser, live_server, user, **context_options):
    page = browser.new_context(**context_options).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Signed in as")
    page.goto(f"{live_server.url}/")
    return page

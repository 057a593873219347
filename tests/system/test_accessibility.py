"""Accessible pages: axe-core (the npm package, injected by Playwright; no CDN) finds no
violation of impact "serious" or "critical" on the pages people use, and the upload, selection,
deletion and filters work from the keyboard alone."""

import json
from pathlib import Path

import pytest

from tests import badimages
from tests.conftest import make_result
from tests.system.conftest import sign_in

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def violations(page) -> list[str]:
    # The site's Content-Security-Policy refuses injected scripts: these pages run with it
    # bypassed (test_browser.py checks the policy itself).
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in BLOCKING
    ]


@pytest.fixture
def checked_page(browser, live_server):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci)")
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def test_public_pages_have_no_serious_violations(checked_page, live_server):
    found = {}
    for path in ("/", "/accounts/signup/", "/accounts/login/", "/api/docs/", "/no/such/page/"):
        checked_page.goto(f"{live_server.url}{path}")
        if path == "/api/docs/":
            checked_page.wait_for_selector("text=ImageClass API")
        found[path] = violations(checked_page)
    assert found == {path: [] for path in found}, json.dumps(found, indent=1)


def test_signed_in_pages_have_no_serious_violations(browser, live_server, alice, active_model):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci)")
    done = make_result(alice, "blue", 0.9, filename="garden.jpg")
    trashed = make_result(alice, "red", 0.7, filename="old.jpg")
    trashed.move_to_trash(alice)
    page = sign_in(browser, live_server, alice, bypass_csp=True)
    found = {}
    for path in ("/", f"/c/{done.pk}/", "/history/", "/trash/", "/accounts/profile/"):
        page.goto(f"{live_server.url}{path}")
        found[path] = violations(page)
    assert found == {path: [] for path in found}, json.dumps(found, indent=1)


def test_upload_select_delete_and_filter_by_keyboard(browser, live_server, worker, alice, tmp_path):
    make_result(alice, "blue", 0.9, filename="first.jpg")
    make_result(alice, "red", 0.8, filename="second.jpg")
    page = sign_in(browser, live_server, alice)

    photo = tmp_path / "typed.jpg"
    photo.write_bytes(badimages.jpeg((40, 40)))
    with page.expect_file_chooser() as chooser:
        page.focus("input[name=images]")
        page.keyboard.press("Enter")  # the focused file input opens the chooser
    chooser.value.set_files(str(photo))
    page.locator("text=Classify >> nth=-1").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#status-badge[data-status=done]", timeout=90_000)

    page.goto(f"{live_server.url}/history/")
    page.focus("#id_label")
    page.keyboard.press("ArrowDown")  # a choice among the history's labels
    assert page.input_value("#id_label") != ""
    page.focus("#id_q")
    page.keyboard.type("first")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=first**")
    assert "label=" in page.url

    page.goto(f"{live_server.url}/history/")
    page.focus("input[aria-label='select second.jpg']")
    page.keyboard.press("Space")
    assert page.is_checked("input[aria-label='select second.jpg']")
    page.on("dialog", lambda dialog: dialog.accept())  # "Move the ticked results to the trash?"
    page.focus("#delete-selected")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Moved 1 result to the trash")
    assert "second.jpg" not in page.content()

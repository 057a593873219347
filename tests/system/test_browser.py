"""End to end in headless Chromium (Debian's, driven by Playwright) against a live server and a
real worker: sign up, upload, see the result arrive, see where the model looked, correct it,
find it by search, share it, and see it as the grantee."""

import pytest
from django.utils import timezone

from tests import badimages
from tests.conftest import PASSWORD, make_result
from tests.system.conftest import sign_in


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
    top_label = page.inner_text("#top-label").lower()
    assert top_label in {"blue", "green", "red"}
    assert page.locator("#top-predictions li").count() == 3
    page.screenshot(path=str(tmp_path / "result.png"))

    page.check("#heatmap-toggle")  # the worker makes the heatmap on this first request
    page.wait_for_selector(
        "#result-image[src^='blob:']", timeout=60_000
    )  # (wait_for_function evaluates a string: the CSP refuses)
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
    assert grantee.inner_text("#top-label").lower() == top_label


def test_api_docs_and_admin_run_under_the_policy_and_injected_scripts_do_not(
    live_server, browser, django_user_model
):
    from mltrain.models import TrainingJob

    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    job = TrainingJob.objects.create(
        name="colours", created_by=root, status="failed", error="stopped"
    )
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("text=ImageClass API")  # Swagger UI ran, from its own script file
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("text=Site administration")
    page.goto(f"{live_server.url}/admin/mltrain/trainingjob/{job.pk}/change/")
    page.wait_for_selector("#training-status >> text=failed: stopped")  # the progress script ran
    page.goto(f"{live_server.url}/admin/accounts/user/{root.pk}/change/")
    page.wait_for_selector("text=Change user")

    page.goto(f"{live_server.url}/")
    response_headers = page.request.get(f"{live_server.url}/").headers
    assert "script-src 'self'" in response_headers["content-security-policy"]
    from playwright.sync_api import Error

    with pytest.raises(Error, match="violates the following Content Security Policy"):
        page.add_script_tag(content="window.injected = true;")
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.injected = true\">')"
    )
    page.wait_for_timeout(500)
    assert page.evaluate("window.injected") is None
    assert len(browser.violations) >= 2 and all(
        "inline" in v for v in browser.violations
    )  # refused, and reported
    browser.violations.clear()


def test_a_batch_fills_in_live_and_a_bad_file_sinks_only_itself(
    live_server, browser, worker, alice, tmp_path
):
    photos = []
    for number in range(6):
        photo = tmp_path / f"photo-{number}.jpg"
        photo.write_bytes(badimages.jpeg((60 + number, 40)))
        photos.append(str(photo))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(badimages.truncated_jpeg())
    page = sign_in(browser, live_server, alice)

    page.set_input_files("input[name=images]", [*photos[:3], str(broken), *photos[3:]])
    page.click("text=Classify >> nth=-1")
    page.wait_for_selector("text=broken.jpg was not sent: The image is truncated or corrupt.")
    assert page.locator(".history-card").count() == 6
    page.wait_for_selector("#batch-progress >> text=6 of 6 done", timeout=90_000)  # no reload
    assert page.locator('.history-card[data-finished="true"] strong').count() == 6
    page.goto(f"{live_server.url}/history/")
    assert page.locator('.history-card[data-finished="true"]').count() == 6


PASTE_AN_IMAGE = """async (base64) => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "image.png", { type: "image/png" }));
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer }));
}"""


def test_chosen_files_show_as_removable_previews_and_a_pasted_image_joins_them(
    live_server, browser, worker, alice, tmp_path
):
    import base64

    photos = []
    for name in ("keep", "drop"):
        photo = tmp_path / f"{name}.jpg"
        photo.write_bytes(badimages.jpeg((50, 40)))
        photos.append(str(photo))
    page = sign_in(browser, live_server, alice)
    page.set_input_files("input[name=images]", photos)
    assert page.locator("#previews img").count() == 2
    page.click("button[aria-label='Remove drop.jpg']")
    assert page.locator("#previews img").count() == 1
    pasted = badimages.encode(badimages.Image.new("RGB", (30, 30), (200, 30, 30)), "PNG")
    page.evaluate(PASTE_AN_IMAGE, base64.b64encode(pasted).decode())
    assert page.locator("#previews img").count() == 2
    assert page.locator("#camera-input[capture=environment]").count() == 1  # phones: the camera
    page.click("text=Classify >> nth=-1")
    page.wait_for_selector("#batch-progress >> text=2 of 2 done", timeout=90_000)
    names = page.locator(".history-card .text-truncate").all_inner_texts()
    assert "keep.jpg" in names and "drop.jpg" not in names
    assert any(name.startswith("pasted-") and name.endswith(".png") for name in names)


def test_delete_restore_and_filter_in_the_browser(live_server, browser, alice):
    kept = make_result(alice, "cat", 0.9, filename="kept-cat.jpg")
    doomed = make_result(alice, "dog", 0.8, filename="doomed-dog.jpg")
    page = sign_in(browser, live_server, alice)
    page.on("dialog", lambda dialog: dialog.accept())  # every delete asks to confirm

    page.goto(f"{live_server.url}/c/{doomed.pk}/")
    page.click("button:has-text('Delete')")
    page.wait_for_selector("text=moved to the trash")
    assert page.locator(".history-card").count() == 1
    page.goto(f"{live_server.url}/trash/")
    page.click("button[aria-label='Restore: doomed-dog.jpg']")
    page.wait_for_selector("text=doomed-dog.jpg is back in your history")

    page.goto(f"{live_server.url}/history/")
    assert page.locator("#match-count").inner_text() == "2 results."
    today = timezone.localdate().isoformat()
    page.fill("#id_created_after", today)  # a date picker: ISO 8601 whatever the locale
    page.select_option("#id_label", "cat")
    page.click("button:has-text('Search')")
    page.wait_for_url(f"**created_after={today}**")
    assert page.locator("#match-count").inner_text() == "1 result matches these filters."
    assert page.locator(".history-card").count() == 1 and str(kept.pk) in page.content()

    page.goto(f"{live_server.url}/history/")
    page.check(f"input[value='{doomed.pk}']")
    page.click("#delete-selected")
    page.wait_for_selector("text=Moved 1 result to the trash")
    page.goto(f"{live_server.url}/trash/")
    page.click("button:has-text('Empty trash')")
    page.wait_for_selector("text=1 result deleted for good")
    assert page.locator("text=The trash is empty.").count() == 1

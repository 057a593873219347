"""`make run` as a user gets it: every process started by `python -m imageclass.embedded run`
(embedded database and broker, worker, gunicorn), then pages, static files and an API upload
classified end to end, then a clean stop."""

import sys
import time
from pathlib import Path

import requests

# The bench scripts start the app and act as API clients; they import each other as scripts.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from app import running_app  # noqa: E402
from load import photo, sign_up  # noqa: E402


def test_the_whole_app_serves_pages_static_files_and_classifies_uploads():
    with running_app("embedded") as (url, _):
        home = requests.get(f"{url}/", timeout=10)
        assert home.status_code == 200 and "ImageClass" in home.text
        assert requests.get(f"{url}/static/css/site.css", timeout=10).status_code == 200
        api = f"{url}/api/v1/"
        client = sign_up(api, "runner")
        created = client.post(f"{api}classifications/", files={"image": ("photo.jpg", photo(1))}, timeout=30)
        assert created.status_code == 202
        deadline = time.monotonic() + 60
        while (result := client.get(created.headers["Location"], timeout=10).json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, result
            time.sleep(0.1)
        assert result["status"] == "done" and result["model_version"] == "cifar10 v1"
        assert len(result["predictions"]) == 3

"""`make run` as a user gets it: every process started by `python -m imageclass.embedded run`
(embedded database and broker, worker, gunicorn), then pages, static files and an API upload
classified end to end, then a clean stop."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from imageclass.addresses import embedded_uri
from imageclass.embedded import free_port

# The bench scripts start the app and act as API clients; they import each other as scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from app import running_app  # noqa: E402
from load import ROLES, photo, processes, sign_up  # noqa: E402


def test_the_whole_app_serves_pages_static_files_and_classifies_uploads():
    with running_app("embedded") as (url, session):
        home = requests.get(f"{url}/", timeout=10)
        assert home.status_code == 200 and "ImageClass" in home.text
        assert requests.get(f"{url}/static/css/site.css", timeout=10).status_code == 200
        api = f"{url}/api/v1/"
        client = sign_up(api, "runner")
        created = client.post(
            f"{api}classifications/", files={"image": ("photo.jpg", photo(1))}, timeout=30
        )
        assert created.status_code == 202
        deadline = time.monotonic() + 60
        while (result := client.get(created.headers["Location"], timeout=10).json())[
            "status"
        ] not in ("done", "failed"):
            assert time.monotonic() < deadline, result
            time.sleep(0.1)
        assert result["status"] == "done" and result["model_version"] == "cifar10 v1"
        assert len(result["predictions"]) == 3
        # An upload can wait for its own result: one request, answered 201 with it.
        waited = client.post(
            f"{api}classifications/?wait=10", files={"image": ("photo.jpg", photo(2))}, timeout=30
        )
        assert waited.status_code == 201 and waited.json()["status"] == "done", waited.text
        assert waited.json()["top_label"] == waited.json()["predictions"][0]["label"]
        # An idle client's connection stays open past gunicorn's default keep-alive (2 s), so
        # its next request cannot race the server closing it.
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as idle:
            idle.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert whole_response(idle).startswith(b"HTTP/1.1 200")
            time.sleep(3)
            idle.settimeout(0.5)
            with pytest.raises(socket.timeout):
                idle.recv(1)  # b"" here would mean the server closed it
    # Stopped (SIGINT, as Ctrl-C), every process it started is gone, gunicorn's workers included.
    deadline = time.monotonic() + 15
    while (left := processes({"any": []}, session)["any"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, left


def launched(role: str, session: int) -> int | None:
    """The pid of the launcher's own process of `role` (a worker's main process, gunicorn's
    master, a server), None while there is none."""
    for pid in processes({role: ROLES[role]}, session)[role]:
        with contextlib.suppress(OSError):
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == session:
                return pid
    return None


def ready(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{url}/readyz", timeout=5).json()["status"] == "ok"
    return False


def test_a_process_that_dies_is_started_again_and_every_job_ends_once():
    """Each kind of process is killed (SIGKILL) once with jobs queued; the launcher starts it
    again, and every job ends done, once, well before the stuck-job sweep would have acted
    (switched off here): the jobs a dead worker held are back in work as the new one starts."""
    with running_app("embedded", SWEEP_INTERVAL="3600") as (url, session):
        api = f"{url}/api/v1/"
        client = sign_up(api, "survivor")
        ids = []
        for kind, role in enumerate(
            ["inference worker", "web", "training worker", "embedded database", "embedded Redis"]
        ):
            for seed in range(kind * 6, kind * 6 + 6):
                created = client.post(
                    f"{api}classifications/",
                    files={"image": ("photo.jpg", photo(seed))},
                    timeout=30,
                )
                assert created.status_code == 202, created.text
                ids.append(created.json()["id"])
            if role == "embedded database":
                # It writes its log out as MongoDB does by default, not at every commit: a kill
                # loses the writes of its last moments (as it would a real mongod's).
                time.sleep(3)
            victim = launched(role, session)
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: launched(role, session), lambda pid: pid not in (None, victim), 60)
            wait_for(lambda: ready(url), bool, 60)
        started = time.monotonic()
        results = wait_for(
            lambda: [
                client.get(f"{api}classifications/{pk}/?wait=0", timeout=10).json() for pk in ids
            ],
            lambda found: all(result.get("status") in ("done", "failed") for result in found),
            60,
        )
        assert [result["status"] for result in results] == ["done"] * len(ids)
        assert time.monotonic() - started < 60
        history, page = [], f"{api}classifications/"
        while page:
            listed = client.get(page, timeout=10).json()
            history, page = history + listed["results"], listed["next"]
        assert sorted(result["id"] for result in history) == sorted(ids)  # each job once


def test_a_process_that_keeps_crashing_stops_the_app_after_growing_pauses(monkeypatch, capsys):
    from imageclass import supervisor

    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.01)
    crashing = lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # noqa: E731
    watcher = supervisor.Supervisor()
    watcher.add("crasher", crashing, lambda process: process.wait())
    with pytest.raises(SystemExit, match="the crasher crashed 6 times in a row"):
        watcher.run(interval=0.01)
    pauses = re.findall(r"exit code 3\); starting it again in ([\d.]+) s", capsys.readouterr().out)
    assert [float(p) for p in pauses] == [0.01, 0.02, 0.04, 0.08, 0.16]


def test_free_ports_are_never_handed_out_twice():
    # A port is free again once its probing socket closes: among 1,000 plain probes some repeat
    # (about 18 expected here), and a CI run once gave the app and its database the same one.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


def test_an_app_that_cannot_start_says_why_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Its database's port: the bench helper reports the app's own error, not a follow-on one.
        with pytest.raises(RuntimeError, match=f"port {port} is already in use"):
            with running_app("embedded", EMBEDDED_MONGODB_PORT=str(port)):
                pass
        # Its own port: refused before the database starts or a migration runs.
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("MONGODB_URI", "REDIS_URL")
        }
        env.update(
            VAR_DIR=str(tmp_path),
            EMBEDDED_MONGODB_PORT=str(free_port()),
            EMBEDDED_REDIS_PORT=str(free_port()),
        )
        command = [sys.executable, "-m", "imageclass.embedded", "run", "--port", str(port)]
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 1
    assert f"port {port} is already in use" in started.stderr
    assert not (tmp_path / "db").exists()


def whole_response(connection: socket.socket) -> bytes:
    """The head of one HTTP response, read with its whole body (gunicorn sends the two apart:
    a single recv can end between them, and the body's bytes would then look like activity on
    an idle connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += (chunk := connection.recv(4096))
        assert chunk, "the server closed the connection"
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += (chunk := connection.recv(4096))
        assert chunk, "the server closed the connection"
    return head


def staff_session(url: str, mongodb_port: int, username: str, password: str) -> requests.Session:
    """Make the registered `username` a superuser (straight in the app's database, as
    `createsuperuser` would) and log in to the admin with a browser-like session."""
    import pymongo

    with pymongo.MongoClient(embedded_uri(mongodb_port)) as client:
        client["imageclass"]["accounts_user"].update_one(
            {"username": username}, {"$set": {"is_staff": True, "is_superuser": True}}
        )
    browser = requests.Session()
    browser.get(f"{url}/admin/login/", timeout=10)
    response = browser.post(
        f"{url}/admin/login/",
        timeout=10,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": f"{url}/admin/login/"},
    )
    assert "Log out" in response.text or "logout" in response.text, response.text[:500]
    return browser


def wait_for(fetch, done, timeout):
    deadline = time.monotonic() + timeout
    while not done(value := fetch()):
        assert time.monotonic() < deadline, value
        time.sleep(0.5)
    return value


def test_custom_classes_trained_in_the_admin_serve_uploads_with_heatmaps_and_exports(tmp_path):
    """The issue's check: a model for new classes trained from an image folder through the
    admin (on the training worker), activated, then used for uploads through the API and the
    web; heatmaps appear; the exports are built and downloadable."""
    import io
    import zipfile

    from tests.imagefolder import make_image_folder

    folder = make_image_folder(tmp_path / "colours", per_class=6)
    dataset = io.BytesIO()
    with zipfile.ZipFile(dataset, "w") as archive:
        for path in sorted(folder.rglob("*.*")):
            archive.write(path, f"colours/{path.relative_to(folder)}")
    mongodb_port = free_port()
    with running_app("embedded", EMBEDDED_MONGODB_PORT=str(mongodb_port)) as (url, _):
        api = f"{url}/api/v1/"
        password = "a long admin passphrase"
        requests.post(
            f"{api}auth/register/",
            json={"username": "boss", "email": "boss@example.com", "password": password},
            timeout=30,
        ).raise_for_status()
        browser = staff_session(url, mongodb_port, "boss", password)
        start = f"{url}/admin/mltrain/trainingjob/new/"
        browser.get(start, timeout=10)
        response = browser.post(
            start,
            timeout=60,
            headers={"Referer": start},
            data={
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "name": "colours",
                "backbone": "imageclass",
                "head_epochs": 2,
                "fine_tune_epochs": 1,
                "batch_size": 8,
                "validation_fraction": 0.25,
                "activate_when_done": "on",
            },
            files={"dataset": ("colours.zip", dataset.getvalue(), "application/zip")},
        )
        assert response.status_code == 200 and "/change/" in response.url, response.text[:2000]
        progress_url = response.url.replace("/change/", "/progress/")
        job = wait_for(
            lambda: browser.get(progress_url, timeout=10).json(), lambda job: job["finished"], 240
        )
        assert job["status"] == "done" and job["model_version"] == "colours v1", job
        assert [entry["phase"] for entry in job["history"]] == ["head", "head", "fine-tune"]

        client = requests.Session()
        client.headers["Authorization"] = (
            "Token "
            + client.post(
                f"{api}auth/token/", json={"username": "boss", "password": password}, timeout=30
            ).json()["token"]
        )
        active = client.get(f"{api}models/active/", timeout=10).json()
        assert active["class_names"] == ["blue", "green", "red"]
        red = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (40, 40), (220, 40, 40)).save(red, "PNG")
        created = client.post(
            f"{api}classifications/", files={"image": ("red.png", red.getvalue())}, timeout=30
        )
        result = wait_for(
            lambda: client.get(created.headers["Location"] + "?wait=5", timeout=30).json(),
            lambda r: r["status"] in ("done", "failed"),
            120,
        )
        assert result["status"] == "done" and result["model_version"] == "colours v1"
        assert {p["label"] for p in result["predictions"]} == {"blue", "green", "red"}
        assert result["class_names"] == [
            "blue",
            "green",
            "red",
        ]  # which classes the result was made with
        heatmap_url = created.headers["Location"] + "heatmap/"
        heatmap = wait_for(
            lambda: client.get(heatmap_url, timeout=10), lambda r: r.status_code != 202, 120
        )
        assert heatmap.status_code == 200 and heatmap.headers["Content-Type"] == "image/jpeg"
        page = browser.get(
            f"{url}/c/{result['id']}/", timeout=10
        )  # the web page, with the owner's session
        assert "colours v1" in page.text and "Show where the model looked" in page.text

        for fmt in ("tflite", "onnx"):
            download = f"{url}/admin/classifier/modelversion/{active['id']}/download/{fmt}"
            exported = wait_for(
                lambda: browser.get(download, timeout=30, allow_redirects=False),
                lambda r: r.status_code == 200,
                180,
            )
            assert (
                exported.headers["Content-Disposition"].endswith(f'colours-v1.{fmt}"')
                and len(exported.content) > 10_000
            )

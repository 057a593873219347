"""Two copies of the app on one machine: a second checkout's `PORT=8080 make run` starts its
embedded servers on free ports when the defaults are taken, records them, and `make manage`
in that checkout talks to its own instance; a second run of the same checkout is refused
before it could share the first one's data."""

import json
import os
import socket

import pytest

from imageclass import embedded


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    for setting in embedded.EMBEDDED_PORTS:
        monkeypatch.delenv(setting, raising=False)
    return tmp_path


def test_taken_default_ports_give_way_to_free_ones(checkout, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(embedded, "EMBEDDED_PORTS", {"EMBEDDED_MONGODB_PORT": taken})
        embedded.choose_embedded_ports()
        chosen = int(os.environ["EMBEDDED_MONGODB_PORT"])
    assert chosen != taken and not embedded.port_in_use(chosen)


def test_a_port_named_in_the_environment_is_kept(checkout, monkeypatch):
    monkeypatch.setenv("EMBEDDED_REDIS_PORT", "6500")
    embedded.choose_embedded_ports()
    assert os.environ["EMBEDDED_REDIS_PORT"] == "6500"


def test_manage_uses_the_ports_its_running_instance_recorded(checkout, monkeypatch):
    monkeypatch.setenv("EMBEDDED_MONGODB_PORT", "40001")
    monkeypatch.setenv("EMBEDDED_REDIS_PORT", "40002")
    embedded.record_instance(8080)
    assert json.loads(embedded.instance_file().read_text()) == {
        "pid": os.getpid(),
        "port": 8080,
        "embedded_mongodb_port": 40001,
        "embedded_redis_port": 40002,
    }
    monkeypatch.delenv("EMBEDDED_MONGODB_PORT")
    monkeypatch.delenv("EMBEDDED_REDIS_PORT")
    ran = {}
    monkeypatch.setattr(embedded, "start_embedded_servers", lambda reuse_running: [])
    monkeypatch.setattr(
        embedded.subprocess,
        "run",
        lambda *a, **k: (
            ran.update(
                mongodb=os.environ["EMBEDDED_MONGODB_PORT"], redis=os.environ["EMBEDDED_REDIS_PORT"]
            )
            or type("Done", (), {"returncode": 0})()
        ),
    )
    assert embedded.run_manage(["check"]) == 0
    assert ran == {"mongodb": "40001", "redis": "40002"}


def test_a_second_run_of_one_checkout_is_refused(checkout):
    embedded.choose_embedded_ports()
    embedded.record_instance(8000)
    with pytest.raises(SystemExit, match="already runs on port 8000.*VAR_DIR=var/copy-8080"):
        embedded.run(8080)


def test_a_stale_record_is_no_instance(checkout):
    embedded.instance_file().parent.mkdir(parents=True)
    embedded.instance_file().write_text(json.dumps({"pid": 2**22 + 12345, "port": 8000}))
    assert embedded.running_instance() is None

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from imageclass import env


def test_values_parse_and_defaults_apply(monkeypatch):
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_LIST", "a.example, b.example ,")
    monkeypatch.setenv("X_FLOAT", "0.25")
    monkeypatch.setenv("X_EMPTY", "  ")
    assert env.env_int("X_INT", 1) == 42
    assert env.env_bool("X_BOOL", False) is True
    assert env.env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env.env_float("X_FLOAT", 1.0) == 0.25
    assert env.env_int("X_EMPTY", 7) == 7
    assert env.env_str("X_UNSET_ANYWHERE", "d") == "d"


@pytest.mark.parametrize(
    "call, value",
    [
        (lambda: env.env_int("X", 1), "ten"),
        (lambda: env.env_int("X", 1, minimum=5), "4"),
        (lambda: env.env_int("X", 1, maximum=65535), "70000"),
        (lambda: env.env_bool("X", True), "maybe"),
        (lambda: env.env_float("X", 1.0), "fast"),
        (lambda: env.env_float("X", 1.0, minimum=0, maximum=1), "nan"),
        (lambda: env.env_str("X", "a", choices=("a", "b")), "c"),
    ],
)
def test_bad_values_fail_loudly_naming_the_variable(monkeypatch, call, value):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match="^X="):
        call()


def test_dotenv_fills_only_unset_variables(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ALREADY", "from-environment")
    monkeypatch.delenv("FROM_FILE", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nALREADY=from-file\nexport FROM_FILE='quoted value'\n")
    env.load_dotenv(dotenv)
    import os

    assert os.environ["ALREADY"] == "from-environment"
    assert os.environ["FROM_FILE"] == "quoted value"
    monkeypatch.delenv("FROM_FILE")


def test_dotenv_rejects_malformed_lines(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("NOT A SETTING\n")
    with pytest.raises(ImproperlyConfigured, match=":1:"):
        env.load_dotenv(dotenv)

"""The production images and compose stack, checked without a Docker engine: the compose file
validates with Compose, and the conventions it must keep (pinned images, health checks,
restart policies, named volumes, no secrets in the file, non-root images) hold."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml
from django.conf import settings

DOCKER = settings.BASE_DIR / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = [name for name, service in SERVICES.items() if service.get("restart") != "no"]


def compose_command():
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_validates(tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor docker-compose is installed (.ci/run installs docker-compose)"
        )
    compose_file = DOCKER / "compose.yml"
    if command == ["docker-compose"]:
        # Compose v1 predates the top-level `name` key; everything else is validated as written.
        compose_file = DOCKER / ".compose-v1.yml"
        compose_file.write_text(
            re.sub(r"(?m)^name: .*\n", "", (DOCKER / "compose.yml").read_text())
        )
    try:
        result = subprocess.run(
            [*command, "-f", str(compose_file), "--profile", "training", "config", "--services"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if compose_file.name == ".compose-v1.yml":
            compose_file.unlink()
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(SERVICES)


def test_stack_has_the_services_production_needs():
    assert {"mongodb", "redis", "minio", "init", "web", "worker", "scheduler", "trainer"} <= set(
        SERVICES
    )
    assert SERVICES["mongodb"]["image"].startswith("mongo:8.")
    assert SERVICES["redis"]["image"].startswith("redis:7.")
    assert SERVICES["trainer"]["profiles"] == ["training"]  # optional: only with --profile training
    assert (
        SERVICES["web"]["build"]["target"] == "web"
        and SERVICES["worker"]["build"]["target"] == "worker"
    )


def test_every_image_is_pinned_to_a_version():
    for name, service in SERVICES.items():
        image = service["image"]
        if "build" in service:
            continue  # our own images, built from docker/Dockerfile
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_long_running_services_restart_and_report_health():
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service or name in ("web", "scheduler"), (
            name
        )  # web: the image's HEALTHCHECK
    assert "HEALTHCHECK" in (DOCKER / "Dockerfile").read_text()


def test_data_lives_in_named_volumes():
    declared = set(COMPOSE["volumes"])
    for name in ("mongodb", "redis", "minio"):
        (volume,) = SERVICES[name]["volumes"]
        assert volume.split(":")[0] in declared, name


def test_no_secret_is_written_in_the_compose_file():
    secret_names = re.compile(r"PASSWORD|SECRET")
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if secret_names.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:-\}", str(value)), (
                    f"{name}.{key} must come from docker/.env"
                )
    app_environment = SERVICES["web"]["environment"]
    for url in (app_environment["MONGODB_URI"], app_environment["REDIS_URL"]):
        assert re.search(r":\$\{[A-Z_]+_PASSWORD:-\}@", url), url


def test_images_run_as_a_non_root_user_from_pinned_bases():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", dockerfile)
    stages = re.split(r"(?m)^FROM ", dockerfile)[1:]
    final = {stage.split()[2]: stage for stage in stages if " AS " in stage.split("\n")[0]}
    for target in ("web", "worker"):
        assert "\nUSER app\n" in final[target], target
    assert "ml.txt" not in final["web-deps"]  # the web image carries no TensorFlow


def generate_env(path):
    subprocess.run(
        [sys.executable, str(DOCKER / "generate_env.py"), str(path)],
        check=True,
        capture_output=True,
    )


def test_generated_env_has_fresh_secrets_and_is_kept(tmp_path):
    path = tmp_path / ".env"
    generate_env(path)
    first = path.read_text()
    values = dict(
        line.split("=", 1) for line in first.splitlines() if line and not line.startswith("#")
    )
    assert all(
        len(values[key]) >= 40
        for key in ("SECRET_KEY", "MONGO_ROOT_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD")
    )
    assert path.stat().st_mode & 0o077 == 0
    generate_env(path)
    assert path.read_text() == first  # an existing file keeps its secrets

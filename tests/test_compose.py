"""``compose.yaml``, the cluster recipe, without a Docker engine: parsed (PyYAML) and held to the
settings it feeds (:class:`app.settings.Settings`), to the image (the ``Dockerfile``) and to itself:
the services, their commands and ports, the shared volume at one path, the database URL naming
the PostgreSQL service and the Ray addresses naming the head.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
SSDBOARD_SERVICES = ("server", "ray-head", "ray-worker")
ENVIRONMENT = {"SSDBOARD_TOKEN": "compose-test-token", "POSTGRES_PASSWORD": "pw"}  # what the README exports

VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` over ``env``, recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return VARIABLE.sub(one, value)


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file with its variables set from ``env`` (default: :data:`ENVIRONMENT`)."""
    document = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<: *ssdboard) resolved
    assert isinstance(document, dict)
    return dict(interpolate(document, ENVIRONMENT if env is None else env))


def option(command: list[str], name: str) -> str:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in an exec-form command."""
    for i, part in enumerate(command):
        if part == name:
            return command[i + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{name} not in {command}")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volumes as ``{source: path in the container}`` (short syntax)."""
    return {src: dst for src, dst, *_ in (str(entry).split(":") for entry in service.get("volumes", []))}


def dockerfile_extras() -> list[str]:
    """The Dockerfile's default ``EXTRAS`` build argument, e.g. ``["export", "postgres", "ray"]``."""
    match = re.search(r'^ARG EXTRAS="\[([^\]]*)\]"', (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no ARG EXTRAS default"
    return [extra.strip() for extra in match[1].split(",")]


def test_the_services_and_the_image() -> None:
    services = load()["services"]
    assert set(services) == {"server", "postgres", "ray-head", "ray-worker"}
    for name in SSDBOARD_SERVICES:  # one image, built from this repository
        assert services[name]["image"] == "ssdboard" and services[name]["build"] == ".", name
    assert services["postgres"]["image"].startswith("postgres:")
    # The head and the workers run `ray` from the image: its default extras must include ray.
    assert "ray" in dockerfile_extras()
    assert {"export", "postgres"} <= set(dockerfile_extras())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^ray = \["ray\[default\]', pyproject, re.MULTILINE)  # the Jobs API is in [default]


def test_commands_and_ports() -> None:
    services = load()["services"]
    server = services["server"]["command"]
    assert server[:2] == ["ssdboard", "serve"] and option(server, "--host") == "0.0.0.0"
    port = option(server, "--port")
    assert f"{port}:{port}" in services["server"]["ports"]

    head = services["ray-head"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert option(head, "--dashboard-host") == "0.0.0.0"  # the server and the workers reach it
    gcs_port, dashboard_port = option(head, "--port"), option(head, "--dashboard-port")
    # Ray's dashboard accepts jobs without authentication: published on the host's loopback only.
    assert services["ray-head"]["ports"] == [f"127.0.0.1:{dashboard_port}:{dashboard_port}"]
    assert f":{dashboard_port}/" in " ".join(services["ray-head"]["healthcheck"]["test"])

    worker = services["ray-worker"]["command"]
    assert worker[:2] == ["ray", "start"] and "--head" not in worker and "--block" in worker
    assert option(worker, "--address") == f"ray-head:{gcs_port}"
    assert "ports" not in services["ray-worker"]  # scaled with --scale: no fixed host port
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert services["server"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_ssdboard_variable_is_a_setting_and_the_server_settings_hold() -> None:
    services = load()["services"]
    fields = set(Settings.model_fields)
    for name, service in services.items():
        for key in service.get("environment", {}):
            if key.startswith("SSDBOARD_"):
                assert key.removeprefix("SSDBOARD_").lower() in fields, f"{name}: {key} is not a setting"
    env = {k: str(v) for k, v in services["server"]["environment"].items()}
    settings = Settings(**{k.removeprefix("SSDBOARD_").lower(): v for k, v in env.items()})  # validated
    assert settings.executor == "ray"
    assert settings.token is not None and settings.token.get_secret_value() == ENVIRONMENT["SSDBOARD_TOKEN"]
    assert settings.max_concurrent_jobs >= 1

    head = services["ray-head"]["command"]
    ray = urlsplit(settings.ray_address)
    assert (ray.scheme, ray.hostname, str(ray.port)) == ("http", "ray-head", option(head, "--dashboard-port"))
    # Workers run on the Ray nodes: they must post to the server's service name, not loopback.
    worker_url = urlsplit(settings.worker_server_url)
    assert (worker_url.hostname, str(worker_url.port)) == ("server", option(services["server"]["command"], "--port"))

    url = make_url(settings.db_url)
    postgres = services["postgres"]["environment"]
    assert url.drivername == "postgresql+psycopg" and url.host == "postgres" and url.port == 5432
    assert (url.username, url.password, url.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert mounts(services["postgres"]) == {"pgdata": "/var/lib/postgresql/data"}


def test_the_artifact_root_is_the_shared_volume_at_one_path_everywhere() -> None:
    document = load()
    services = document["services"]
    settings = Settings(artifact_dir=services["server"]["environment"]["SSDBOARD_ARTIFACT_DIR"])
    paths = {name: mounts(services[name]) for name in SSDBOARD_SERVICES}
    ((volume, path),) = paths["server"].items()
    assert all(p == {volume: path} for p in paths.values()), paths  # server, head and workers alike
    assert volume in document["volumes"]  # a named volume, not a host directory
    assert settings.artifact_root.is_relative_to(path)
    # A named volume starts as a copy of the image's directory, owned by the image's user: the
    # Dockerfile's VOLUME /data (chown'ed to uid 10001) is that directory.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"VOLUME {path}" in dockerfile and f"chown ssdboard:ssdboard {path}" in dockerfile


@pytest.mark.parametrize("missing", ["SSDBOARD_TOKEN", "POSTGRES_PASSWORD"])
def test_up_refuses_without_the_secrets(missing: str) -> None:
    env = {k: v for k, v in ENVIRONMENT.items() if k != missing}
    with pytest.raises(KeyError, match=missing):
        load(env)
    # Compose reads "$(" inside ${...} as a broken variable: the messages stay plain text.
    assert "$(" not in "".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))

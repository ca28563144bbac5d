"""deploy/k8s and the built images agree: the port each container declares is the one its image
listens on, the probes ask what the image answers, the uid is the image's, the command is the
image's, and every variable an overlay gives is one the image's code reads, with a value that
code accepts (each service's settings class, loaded inside its image). And each image holds its
service's venv and nothing of the build: no compiler, uv, pip, cache or development package."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pytest

from .cluster import Workload, podman, render, workloads

OVERLAYS = ("dev", "prod")
SANDBOX_READS = {"SANDBOX_HOST", "SANDBOX_PORT", "LOG_LEVEL"}
"""card_sandbox reads these from os.environ (no settings class)."""

# Run inside a service image: load its settings from the environment given (a wrong value fails
# here as it would at start-up) and print every variable the service reads.
READS = """
import importlib, json, sys
from juniper_shared import tracing
from pydantic_settings import BaseSettings
module = importlib.import_module(sys.argv[1] + ".settings")
[settings] = [c for c in vars(module).values()
              if isinstance(c, type) and issubclass(c, BaseSettings) and c.__module__ == module.__name__]
settings()
print(json.dumps(sorted({name.upper() for name in settings.model_fields} | tracing.VARIABLES)))
"""


def inspect(image: str) -> dict[str, Any]:
    [found] = json.loads(podman("image", "inspect", image))
    return dict(found)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, tag: str) -> dict[str, Workload]:
    return workloads(render(str(request.param)), tag)


def module_of(config: dict[str, Any]) -> str:
    command = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    assert command[:2] == ["python", "-m"], command
    return str(command[2])


def test_ports_probes_uid_and_command_are_the_images(overlay: dict[str, Workload]) -> None:
    for name, workload in overlay.items():
        image = inspect(workload.image)
        config = image["Config"]
        env = dict(line.split("=", 1) for line in config["Env"])
        assert list(config["ExposedPorts"]) == [f"{workload.port}/tcp"], name
        port_variable = "SANDBOX_PORT" if name == "card-sandbox" else "HTTP_PORT"
        assert env[port_variable] == str(workload.port), name
        given = workload.environment({"run": "x", "database": "x"})
        assert given.get(port_variable, env[port_variable]) == str(workload.port), name
        # The kubelet probes what the image's own health check asks.
        health = " ".join(image["Healthcheck"]["Test"])
        liveness = workload.container["livenessProbe"]["httpGet"]
        assert liveness["port"] == "http"
        assert liveness["path"] in health, name
        # runAsNonRoot can only be verified against a numeric USER.
        uid, gid = workload.user
        assert config["User"] == f"{uid}:{gid}", name
        assert uid != 0
        # The manifest runs the image's own process (or names the very same one).
        if "command" in workload.container:
            assert workload.container["command"] == (config.get("Entrypoint") or []) + config["Cmd"]
        assert "args" not in workload.container, name
        assert module_of(config) == ("card_sandbox" if name == "card-sandbox" else name)


def test_every_variable_given_is_read_by_the_image_and_accepted(
    overlay: dict[str, Workload],
) -> None:
    for name, workload in overlay.items():
        given = workload.environment({"run": "x", "database": "x"})
        if name == "card-sandbox":
            assert set(given) <= SANDBOX_READS, set(given) - SANDBOX_READS
            continue
        reads = set(json.loads(in_image(workload, given, "python", "-c", READS, name)))
        assert set(given) <= reads, f"{name} does not read {sorted(set(given) - reads)}"


CONTENTS = """
import importlib.metadata, json, os, shutil
print(json.dumps({
    "packages": sorted({d.metadata["Name"].lower() for d in importlib.metadata.distributions()}),
    "tools": [t for t in ("gcc", "cc", "c++", "make", "uv", "pip", "pip3") if shutil.which(t)],
    "left": [p for p in ("/root/.cache", "/src", "/app/.venv/bin/pip") if os.path.exists(p)],
}))
"""
DEVELOPMENT = {"pytest", "pytest-asyncio", "hypothesis", "ruff", "mypy", "import-linter", "pip"}


def test_each_image_holds_its_service_and_its_dependencies_only(
    overlay: dict[str, Workload],
) -> None:
    for name, workload in overlay.items():
        found = json.loads(in_image(workload, {}, "python", "-c", CONTENTS))
        assert found["tools"] == [], f"{name} has build tools: {found['tools']}"
        assert found["left"] == [], f"{name} keeps build leftovers: {found['left']}"
        packages = set(found["packages"])
        assert not packages & DEVELOPMENT, f"{name} has {packages & DEVELOPMENT}"
        ours = {package for package in packages if package.startswith("juniper")}
        assert ours == {"juniper-shared", f"juniper-{name}"}, f"{name}: {ours}"


def in_image(workload: Workload, env: dict[str, str], *command: str) -> str:
    """Run `command` in the workload's image, offline, as its user, with `env`."""
    uid, gid = workload.user
    descriptor, path = tempfile.mkstemp(suffix=".env")
    try:
        with os.fdopen(descriptor, "w") as env_file:
            env_file.writelines(f"{key}={value}\n" for key, value in env.items())
        return podman(
            "run",
            "--rm",
            "--network=none",
            "--read-only",
            "--no-healthcheck",
            "--pull=never",
            f"--user={uid}:{gid}",
            f"--env-file={path}",
            workload.image,
            *command,
        )
    finally:
        os.unlink(path)

"""The one Dockerfile, read without building it: multi-stage uv builds from the workspace lock, a
non-root user, a health check, one process per image, and only files that exist in the context.
tests/images builds and runs the images themselves."""

from __future__ import annotations

import glob
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from console.settings import ConsoleSettings
from invoicing.settings import InvoicingSettings
from juniper_shared.settings import ServiceSettings
from notifications.settings import NotificationsSettings
from orders.settings import OrdersSettings
from payments.settings import PaymentsSettings

REPO = Path(__file__).resolve().parents[2]
SERVICES: dict[str, type[ServiceSettings] | type[ConsoleSettings]] = {
    "orders": OrdersSettings,
    "invoicing": InvoicingSettings,
    "payments": PaymentsSettings,
    "notifications": NotificationsSettings,
    "console": ConsoleSettings,
}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for name, args in self.instructions if name == keyword]


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile, with ARG defaults declared before the first FROM substituted."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest).split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 else None))
            continue
        assert stages, f"{path}: {keyword} before FROM"
        stages[-1].instructions.append((keyword, rest))
    return stages


def copy_sources(args: str) -> list[str]:
    words = shlex.split(args)
    if any(word.startswith("--from") for word in words):
        return []
    return [word for word in words if not word.startswith("--")][:-1]


def dockerignored(relative: str) -> bool:
    """Whether Docker leaves `relative` out of the build context (.dockerignore semantics:
    the last matching pattern wins, `!` re-includes, a match on a parent excludes the subtree)."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = glob_regex(pattern.lstrip("!").strip("/"))
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def glob_regex(pattern: str) -> str:
    """Docker's pattern language: `**` any number of directories, `*` and `?` within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def workspace_pyprojects() -> set[str]:
    members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    found = {"pyproject.toml"}
    for member in members["members"]:
        for directory in glob.glob(str(REPO / member)):
            if (Path(directory) / "pyproject.toml").exists():
                found.add(str((Path(directory) / "pyproject.toml").relative_to(REPO)))
    return found


DOCKERFILE = REPO / "Dockerfile"


def stages() -> dict[str, Stage]:
    return {stage.name or stage.base: stage for stage in parse(DOCKERFILE)}


@pytest.fixture(params=sorted(SERVICES))
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_venv_is_built_from_the_lock_with_uv_on_the_usual_python_base() -> None:
    build, runtime = stages()["build"], stages()["runtime"]
    assert build.base == runtime.base == "python:3.11-slim"
    syncs = [run for run in build.all("RUN") if "uv sync" in run]
    assert len(syncs) == 2, "dependencies (cached layer), then the workspace code"
    for run in syncs:
        assert "--frozen" in run
        assert "--no-dev" in run
        assert '--package "juniper-$SERVICE"' in run


def test_runtime_stage_gets_only_the_venv() -> None:
    copies = stages()["runtime"].all("COPY")
    assert copies
    assert all("--from=build" in copy for copy in copies)
    assert [shlex.split(copy)[-2] for copy in copies] == ["/app/.venv"]


def test_every_image_is_the_runtime_with_its_process_and_nothing_copied() -> None:
    images = {name: stage for name, stage in stages().items() if stage.base == "runtime"}
    assert sorted(images) == sorted([*SERVICES, "card-sandbox"])
    for stage in images.values():
        assert not stage.all("COPY")
        assert not stage.all("RUN")
        assert not stage.all("ENTRYPOINT")
    assert json.loads(images["card-sandbox"].all("CMD")[-1]) == ["python", "-m", "card_sandbox"]


def test_runs_as_non_root_one_process_on_its_port(service: str) -> None:
    runtime, image = stages()["runtime"], stages()[service]
    [user] = runtime.all("USER")
    assert user == "10001:10001"
    port = SERVICES[service].model_fields["http_port"].default
    assert image.all("EXPOSE") == [str(port)]
    assert json.loads(image.all("CMD")[-1]) == ["python", "-m", service]
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(runtime.all("ENV"))
    assert "HTTP_HOST=0.0.0.0" in " ".join(runtime.all("ENV"))
    assert f"HTTP_PORT={port}" in " ".join(image.all("ENV"))


def test_health_check_asks_healthz_on_the_service_port(service: str) -> None:
    [check] = stages()[service].all("HEALTHCHECK")
    assert "/healthz" in check
    assert "HTTP_PORT" in check
    port = SERVICES[service].model_fields["http_port"].default
    assert f"'{port}'" in check


def test_every_copied_path_exists_and_is_in_the_build_context(service: str) -> None:
    for stage in parse(DOCKERFILE):
        for copy in stage.all("COPY"):
            for source in copy_sources(copy.replace("${SERVICE}", service)):
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"


def test_build_stage_sees_every_workspace_member() -> None:
    """uv resolves the whole workspace: a member added later must be copied too."""
    copied = {
        str(Path(source) / "pyproject.toml") if not source.endswith(".toml") else source
        for copy in stages()["build"].all("COPY")
        for source in copy_sources(copy)
        if source.endswith("pyproject.toml")
    }
    assert workspace_pyprojects() <= copied


def test_dockerignore_keeps_local_state_out() -> None:
    for path in [
        ".venv/bin/python",
        ".local/logs/kafka.log",
        "build/images/orders.cdx.json",
        "services/orders/tests/unit/test_x.py",
        "shared/src/juniper_shared/__pycache__/kafka.cpython-311.pyc",
        "services/payments/README.md",
    ]:
        assert dockerignored(path), path
    for path in [
        "uv.lock",
        "shared/src/juniper_shared/kafka.py",
        "services/orders/pyproject.toml",
        "services/invoicing/src/invoicing/templates/invoice.html",
    ]:
        assert not dockerignored(path), path

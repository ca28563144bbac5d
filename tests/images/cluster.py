"""The images run as the kubelet would run them, with podman: each container from the rendered
overlay's Deployment (image, command, ConfigMap and Secret environment, securityContext, limits,
/tmp emptyDir), on the host's network against the local Kafka, FerretDB and Mailpit.

Two tables hold every difference from a cluster: TEST_SECRETS gives a value to each key the
manifests read from a Secret, HERE the few settings a shared test machine needs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VALIDATE = REPO / "deploy" / "k8s" / "validate.sh"
JWT_SECRET = "dev-only-secret"
"""The seller tokens of tests/e2e's Seller are signed with it."""

TEST_SECRETS: dict[str, str] = {
    # "<key>" or "<secret name>/<key>" (which wins) -> test value; {service} is the Deployment's
    # name. The local broker's users have the password `<service>-dev-secret`.
    "AUTH_JWT_SECRET": JWT_SECRET,
    "MONGODB_URL": "mongodb://127.0.0.1:27017",
    "KAFKA_SASL_USERNAME": "{service}",
    "KAFKA_SASL_PASSWORD": "{service}-dev-secret",
    "password": "{service}-dev-secret",  # a Strimzi KafkaUser's Secret (named after the user)
    "BUYER_LINK_SECRET": "buyer-link-secret-for-the-image-tests",
    "BUYER_LINK_PREVIOUS_SECRETS": "",
    "CARD_VAULT_KEY": "aW1hZ2UtdGVzdHMtb25seS1jYXJkLXZhdWx0LWtleSE=",  # Fernet: base64 of 32 bytes
    "CARD_VAULT_PREVIOUS_KEYS": "",
}
"""A key the manifests reference that is missing here fails the run (unless the reference is
`optional: true`, which Kubernetes then leaves unset too)."""

HERE: dict[str, str | None] = {
    # Every run has topics and databases of its own on the shared broker and FerretDB.
    "KAFKA_TOPIC_PREFIX": "{run}.",
    "MONGODB_DATABASE": "{run}_{service}",
    # Four services share FerretDB's PostgreSQL pool with everyone else's tests.
    "MONGODB_MAX_POOL_SIZE": "10",
    # The local broker: SASL without TLS on its usual port (the cluster's is SASL_SSL on 9093
    # with the cluster CA); the same principals, passwords and ACLs.
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SSL_CA_FILE": None,
}
"""What differs on this machine from a cluster, set on each service over what the manifests
give (one row each, with the reason); None unsets a variable."""

CLUSTER_HOSTS = (
    "juniper-kafka-kafka-bootstrap.kafka.svc",
    "card-sandbox",
    "mailpit",
    # The console calls the four APIs by their Service names.
    "orders",
    "invoicing",
    "payments",
    "notifications",
)
"""Cluster names the dev overlay's configuration uses: all on 127.0.0.1 here."""


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    """podman with this machine's settings (scripts/images.sh)."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "images.sh"), "podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay as `kustomize build` renders it (deploy/k8s/validate.sh)."""
    result = subprocess.run(
        ["bash", str(VALIDATE), "json", str(REPO / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resources: list[dict[str, Any]] = json.loads(result.stdout)
    return resources


def local_image(reference: str, tag: str) -> str:
    """The built image for a manifest's `junipermarket/<name>[:tag]` (any registry prefix)."""
    name = reference.rsplit("/", 1)[-1].split(":")[0]
    return f"localhost/junipermarket/{name}:{tag}"


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Workload:
    """One Deployment's single container, as the kubelet would start it."""

    name: str
    image: str
    container: dict[str, Any]
    pod: dict[str, Any]
    config: dict[str, str]
    """The ConfigMaps' data it gets through envFrom."""

    @property
    def port(self) -> int:
        [http] = [p for p in self.container["ports"] if p["name"] == "http"]
        return int(http["containerPort"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grace_seconds(self) -> int:
        return int(self.pod.get("terminationGracePeriodSeconds", 30))

    @property
    def user(self) -> tuple[int, int]:
        merged = {
            **self.pod.get("securityContext", {}),
            **self.container.get("securityContext", {}),
        }
        return int(merged["runAsUser"]), int(merged.get("runAsGroup", merged["runAsUser"]))

    def probe_paths(self) -> set[str]:
        return {
            self.container[probe]["httpGet"]["path"]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe")
            if probe in self.container
        }

    def scraped(self) -> str | None:
        """The path Prometheus scrapes (pod annotations), if it does."""
        annotations = self.pod.get("metadata", {}).get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            return None
        return str(annotations.get("prometheus.io/path", "/metrics"))

    def environment(self, values: dict[str, str]) -> dict[str, str]:
        """envFrom, then env (later wins, as in Kubernetes); Secret keys from TEST_SECRETS."""
        env = dict(self.config)
        for entry in self.container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            value = TEST_SECRETS.get(f"{ref['name']}/{ref['key']}", TEST_SECRETS.get(ref["key"]))
            if value is None:
                assert ref.get("optional"), (
                    f"{self.name} reads {ref['key']} from Secret {ref['name']}: "
                    "give it a test value in TEST_SECRETS (tests/images/cluster.py)"
                )
                continue
            env[entry["name"]] = value.format(service=self.name, **values)
        return env


def workloads(resources: list[dict[str, Any]], tag: str) -> dict[str, Workload]:
    config_maps = {
        r["metadata"]["name"]: r.get("data", {}) for r in resources if r["kind"] == "ConfigMap"
    }
    found = {}
    for deployment in (r for r in resources if r["kind"] == "Deployment"):
        template = deployment["spec"]["template"]
        [container] = template["spec"]["containers"]
        config: dict[str, str] = {}
        for source in container.get("envFrom", []):
            config |= config_maps[source["configMapRef"]["name"]]
        name = deployment["metadata"]["name"]
        pod = {**template["spec"], "metadata": template.get("metadata", {})}
        found[name] = Workload(name, local_image(container["image"], tag), container, pod, config)
    return found


@dataclass
class Pod:
    """A running container of one workload (named `<run>-<workload>`)."""

    workload: Workload
    run: str
    env: dict[str, str]
    started_at: float = 0.0
    env_file: Path | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.run}-{self.workload.name}"

    def create(self) -> None:
        container, workload = self.container_spec, self.workload
        uid, gid = workload.user
        security = container.get("securityContext", {})
        tmp = next(
            (v for v in workload.pod.get("volumes", []) if v["name"] == "tmp" and "emptyDir" in v),
            None,
        )
        args = [
            "create",
            f"--name={self.name}",
            f"--label=jm.test-images.repo={REPO}",  # scripts/images.sh removes leftovers by it
            "--network=host",
            *(f"--add-host={host}:127.0.0.1" for host in CLUSTER_HOSTS),
            f"--user={uid}:{gid}",
            "--no-healthcheck",  # Kubernetes ignores HEALTHCHECK: its probes ask instead
            "--pull=never",
        ]
        if security.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        if tmp is not None:
            size = tmp["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
            args.append(f"--tmpfs=/tmp:rw,size={size},mode=1777")
        if security.get("allowPrivilegeEscalation") is False:
            args.append("--security-opt=no-new-privileges")
        for capability in security.get("capabilities", {}).get("drop", []):
            args.append(f"--cap-drop={capability}")
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args.append(f"--memory={limits['memory'].replace('Mi', 'm').replace('Gi', 'g')}")
        if "cpu" in limits:
            cpu = str(limits["cpu"])
            args.append(f"--cpus={int(cpu[:-1]) / 1000 if cpu.endswith('m') else float(cpu)}")
        # An env file keeps the secrets off podman's command line.
        descriptor, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".env")
        with os.fdopen(descriptor, "w") as env_file:
            env_file.writelines(f"{key}={value}\n" for key, value in self.env.items())
        self.env_file = Path(path)
        args.append(f"--env-file={path}")
        if "command" in container:
            args.append(f"--entrypoint={json.dumps(container['command'])}")
        args.append(workload.image)
        args += container.get("args", [])
        podman(*args)

    @property
    def container_spec(self) -> dict[str, Any]:
        return self.workload.container

    def start(self) -> None:
        self.started_at = time.monotonic()
        podman("start", self.name)

    def stop(self) -> tuple[int, float]:
        """SIGTERM, then SIGKILL after the pod's terminationGracePeriodSeconds, as the kubelet
        does; the exit code and the seconds it took."""
        started = time.monotonic()
        podman("stop", f"--time={self.workload.grace_seconds}", self.name, timeout=120)
        took = time.monotonic() - started
        return self.exit_code(), took

    def exit_code(self) -> int:
        return int(podman("inspect", "--format={{.State.ExitCode}}", self.name).strip())

    def running(self) -> bool:
        return podman("inspect", "--format={{.State.Running}}", self.name).strip() == "true"

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "images.sh"), "podman", "exec", self.name, *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def memory(self) -> tuple[str, float]:
        """Memory in use against the limit (podman's words), and the percentage of the limit."""
        [stats] = json.loads(podman("stats", "--no-stream", "--format=json", self.name))
        return stats["mem_usage"], float(stats["mem_percent"].rstrip("%"))

    def logs(self, lines: int = 40) -> str:
        return podman("logs", f"--tail={lines}", self.name, check=False)

    def remove(self) -> None:
        podman("rm", "--force", "--time=5", self.name, check=False)
        if self.env_file is not None:
            self.env_file.unlink(missing_ok=True)


def environment_for(workload: Workload, run: str) -> dict[str, str]:
    values = {"run": run, "database": f"{run}_{workload.name}".replace("-", "_")}
    env = workload.environment(values)
    if workload.name != "card-sandbox":
        for key, template in HERE.items():
            if template is None:
                env.pop(key, None)
            else:
                env[key] = template.format(service=workload.name, **values)
    return env


def run_id() -> str:
    """Topic prefixes and database names of one run: `jmimg<time><pid>`."""
    return re.sub(r"\W", "", f"jmimg{int(time.time()) % 100000}{os.getpid() % 1000}")

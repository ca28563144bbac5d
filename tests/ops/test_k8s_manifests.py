"""The Kubernetes manifests as an SRE applies them: rendered by kustomize, valid against the real
API schemas (offline), and holding the promises the runbook makes."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from console.settings import ConsoleSettings
from invoicing.settings import InvoicingSettings
from juniper_ops import kafka_access
from juniper_shared import tracing
from juniper_shared.contracts.registry import TOPICS
from juniper_shared.settings import ServiceSettings
from notifications.settings import NotificationsSettings
from orders.settings import OrdersSettings
from payments.settings import PaymentsSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
VALIDATE = K8S / "validate.sh"
SERVICES: dict[str, type[ServiceSettings]] = {
    "orders": OrdersSettings,
    "invoicing": InvoicingSettings,
    "payments": PaymentsSettings,
    "notifications": NotificationsSettings,
}
OVERLAYS = ("dev", "prod")
DAY_MS = 24 * 3600 * 1000

Resource = dict[str, Any]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(VALIDATE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,  # the first run builds kustomize once
        check=False,
    )


@functools.cache
def rendered(path: str) -> tuple[Resource, ...]:
    result = run("json", K8S / path)
    assert result.returncode == 0, result.stderr
    return tuple(json.loads(result.stdout))


def of_kind(resources: tuple[Resource, ...], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def container(deployment: Resource) -> Resource:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_every_overlay_renders_and_is_valid_against_the_kubernetes_schemas() -> None:
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    for overlay in OVERLAYS:
        assert f"overlays/{overlay}: " in result.stdout
    assert "kustomizations valid against Kubernetes" in result.stdout


def test_a_wrong_field_or_a_wrong_topic_spec_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "base"
    shutil.copytree(K8S / "base", broken)
    deployment = broken / "orders" / "deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFS: true")
    )
    topics = broken / "kafka-topics.yaml"
    topics.write_text(topics.read_text().replace("partitions: 6", "partitions: many", 1))
    result = run(broken)
    assert result.returncode == 1
    assert "Deployment/orders" in result.stderr
    assert "readOnlyRootFS" in result.stderr
    assert "KafkaTopic/orders.placed: spec.partitions" in result.stderr


def test_kafka_topics_are_the_registry_topics_and_their_dead_letter_topics() -> None:
    topics = of_kind(rendered("overlays/prod"), "KafkaTopic")
    expected = {topic.name for topic in TOPICS} | {topic.dlq for topic in TOPICS}
    assert {t["spec"]["topicName"] for t in topics.values()} == expected
    assert set(topics) == expected
    for name, topic in topics.items():
        spec = topic["spec"]
        assert (spec["partitions"], spec["replicas"]) == (6, 3), name
        assert spec["config"]["min.insync.replicas"] == 2, name
        days = 30 if name.endswith(".dlq") else 7
        assert spec["config"]["retention.ms"] == days * DAY_MS, name


@pytest.mark.parametrize("path", ["base", "overlays/dev", "overlays/prod"])
def test_each_service_runs_hardened_with_probes_and_a_drain_longer_than_its_own(path: str) -> None:
    resources = rendered(path)
    deployments = of_kind(resources, "Deployment")
    for service, settings in SERVICES.items():
        pod = deployments[service]["spec"]["template"]["spec"]
        main = container(deployments[service])
        assert pod["terminationGracePeriodSeconds"] == 45  # > the 20 s drain + the preStop pause
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = main["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        [tmp] = [mount for mount in main["volumeMounts"] if mount["mountPath"] == "/tmp"]  # noqa: S108  # noqa: S108
        [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
        assert "emptyDir" in volume
        port = settings.model_fields["http_port"].default
        assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["resources"]["requests"]
        assert main["resources"]["limits"]


@pytest.mark.parametrize("path", ["base", "overlays/dev", "overlays/prod"])
def test_every_variable_given_to_a_service_is_one_it_reads(path: str) -> None:
    resources = rendered(path)
    deployments = of_kind(resources, "Deployment")
    config_maps = of_kind(resources, "ConfigMap")
    for service, settings in SERVICES.items():
        main = container(deployments[service])
        [config_ref] = main["envFrom"]
        config = config_maps[config_ref["configMapRef"]["name"]]["data"]
        names = set(config) | {variable["name"] for variable in main["env"]}
        # The OTEL_* variables are read by the OpenTelemetry SDK (juniper_shared.tracing).
        fields = {name.upper() for name in settings.model_fields} | tracing.VARIABLES
        assert names <= fields, f"{service}: {sorted(names - fields)} are read by nobody"
        assert {"KAFKA_BOOTSTRAP_SERVERS", "HTTP_PORT", "HTTP_HOST"} <= set(config)
        assert config["HTTP_HOST"] == "0.0.0.0"  # noqa: S104 -- pods must listen on their IP
        assert config["HTTP_PORT"] == str(settings.model_fields["http_port"].default)
        secrets = {
            variable["name"]
            for variable in main["env"]
            if "secretKeyRef" in variable.get("valueFrom", {})
        }
        assert {"AUTH_JWT_SECRET", "MONGODB_URL"} <= secrets
        assert not {"AUTH_JWT_SECRET", "MONGODB_URL", "SMTP_PASSWORD"} & set(config)


def test_the_example_secrets_define_every_secret_key_referenced() -> None:
    examples = {
        secret["metadata"]["name"]: set(secret["stringData"])
        for secret in rendered("base/secret.example.yaml")
    }
    # Strimzi's User Operator creates a Secret per KafkaUser, named after it: its password.
    examples |= {user: {"password"} for user in of_kind(rendered("base"), "KafkaUser")}
    for deployment in of_kind(rendered("base"), "Deployment").values():
        for variable in container(deployment).get("env", []):
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["key"] in examples.get(ref["name"], set()), ref
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"]["items"]}
                assert keys <= examples.get(volume["secret"]["secretName"], set()), volume
    assert not of_kind(rendered("base"), "Secret"), "secrets are referenced, never shipped"


def test_production_keeps_a_replica_through_disruptions_and_scales_within_partitions() -> None:
    resources = rendered("overlays/prod")
    deployments = of_kind(resources, "Deployment")
    budgets = of_kind(resources, "PodDisruptionBudget")
    autoscalers = of_kind(resources, "HorizontalPodAutoscaler")
    partitions = min(t["spec"]["partitions"] for t in of_kind(resources, "KafkaTopic").values())
    for service in SERVICES:
        labels = deployments[service]["spec"]["template"]["metadata"]["labels"]
        budget = budgets[service]["spec"]
        assert budget["minAvailable"] == 1
        assert budget["selector"]["matchLabels"].items() <= labels.items()
        autoscaler = autoscalers[service]["spec"]
        assert autoscaler["scaleTargetRef"]["name"] == service
        assert deployments[service]["spec"]["replicas"] <= autoscaler["minReplicas"]
        assert autoscaler["maxReplicas"] <= partitions
        [metric] = autoscaler["metrics"]
        assert metric["resource"]["name"] == "cpu"


def test_network_policies_open_only_the_http_port_and_the_needed_egress() -> None:
    resources = rendered("overlays/prod")
    policies = of_kind(resources, "NetworkPolicy")
    for service, settings in SERVICES.items():
        spec = policies[service]["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        [ingress] = spec["ingress"]
        port = settings.model_fields["http_port"].default
        assert ingress["ports"] == [{"protocol": "TCP", "port": port}]
        egress_ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
        assert {53, 9093, 27017} <= egress_ports
        assert (587 in egress_ports) == (service == "notifications")
        assert (443 in egress_ports) == (service == "payments")


def test_development_runs_one_replica_of_each_and_the_sandbox_processor() -> None:
    resources = rendered("overlays/dev")
    deployments = of_kind(resources, "Deployment")
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == {
        "orders": 1,
        "invoicing": 1,
        "payments": 1,
        "notifications": 1,
        "console": 1,
        "card-sandbox": 1,
    }
    sandbox = container(deployments["card-sandbox"])
    assert sandbox["image"] == "junipermarket/card-sandbox:dev"
    assert "command" not in sandbox, "the image's own CMD runs it"
    config_maps = of_kind(resources, "ConfigMap")
    payments_config = next(c for n, c in config_maps.items() if n.startswith("payments-config"))
    assert payments_config["data"]["CARD_PROCESSOR_URL"] == "http://card-sandbox:8010"
    assert not of_kind(resources, "HorizontalPodAutoscaler")


def test_the_kafka_cluster_authenticates_by_scram_over_tls_and_authorizes_by_acl() -> None:
    [cluster] = of_kind(rendered("kafka"), "Kafka").values()
    [listener] = cluster["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert cluster["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert cluster["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    # The users' Secrets must appear where the services run.
    namespace = next(r for r in rendered("overlays/prod"))["metadata"]["namespace"]
    operators = cluster["spec"]["entityOperator"]
    assert operators["userOperator"]["watchedNamespace"] == namespace
    assert operators["topicOperator"]["watchedNamespace"] == namespace


def _granted(user: Resource) -> set[tuple[str, str, str, str]]:
    return {
        (
            rule["resource"]["type"],
            rule["resource"].get("name", ""),
            operation,
            rule["resource"].get("patternType", "literal"),
        )
        for rule in user["spec"]["authorization"]["acls"]
        for operation in rule["operations"]
    }


def _contract(principal: str) -> set[tuple[str, str, str, str]]:
    strimzi_name = {"IDEMPOTENT_WRITE": "IdempotentWrite", "READ": "Read", "WRITE": "Write"}
    return {
        (
            acl.resource_pattern.resource_type.name.lower(),
            ""
            if acl.resource_pattern.resource_type.name == "CLUSTER"
            else acl.resource_pattern.resource_name,
            strimzi_name[acl.operation.name],
            "literal",
        )
        for acl in kafka_access.acls()
        if acl.principal == f"User:{principal}"
    }


def test_every_principal_is_a_kafka_user_with_the_contract_table_acls() -> None:
    users = of_kind(rendered("overlays/prod"), "KafkaUser")
    principals = set(kafka_access.PRINCIPALS) - {kafka_access.SUPER_USER}
    assert set(users) == principals
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "juniper-kafka"
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
        assert _granted(user) == _contract(name), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_logs_in_as_its_own_kafka_user_over_tls(overlay: str) -> None:
    resources = rendered(f"overlays/{overlay}")
    deployments = of_kind(resources, "Deployment")
    config_maps = of_kind(resources, "ConfigMap")
    users = of_kind(resources, "KafkaUser")
    for service in SERVICES:
        main = container(deployments[service])
        [config_ref] = main["envFrom"]
        config = config_maps[config_ref["configMapRef"]["name"]]["data"]
        assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert config["KAFKA_SASL_USERNAME"] == service
        assert service in users
        [password] = [v for v in main["env"] if v["name"] == "KAFKA_SASL_PASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == {"name": service, "key": "password"}
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        assert config["KAFKA_SSL_CA_FILE"] == mounts["kafka-ca"] + "/ca.crt"


@pytest.mark.parametrize("path", ["overlays/dev", "overlays/prod"])
def test_the_console_holds_no_secret_and_reaches_only_the_four_apis(path: str) -> None:
    resources = rendered(path)
    main = container(of_kind(resources, "Deployment")["console"])
    assert "env" not in main  # no secret: it forwards the seller's own token
    assert main["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    [config_ref] = main["envFrom"]
    config = of_kind(resources, "ConfigMap")[config_ref["configMapRef"]["name"]]["data"]
    assert config["CONSOLE_DEV_SIGN_IN"] == "false"
    assert set(config) <= {name.upper() for name in ConsoleSettings.model_fields}
    spec = of_kind(resources, "NetworkPolicy")["console"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert [rule["ports"] for rule in spec["ingress"]] == [[{"protocol": "TCP", "port": 8000}]]
    reached = {
        (peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], port["port"])
        for rule in spec["egress"]
        for peer in rule["to"]
        if "namespaceSelector" not in peer
        for port in rule["ports"]
    }
    assert reached == {
        ("orders", 8001),
        ("invoicing", 8002),
        ("payments", 8003),
        ("notifications", 8004),
    }
    dns_only = [
        rule for rule in spec["egress"] if any("namespaceSelector" in p for p in rule["to"])
    ]
    assert {port["port"] for rule in dns_only for port in rule["ports"]} == {53}

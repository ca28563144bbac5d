"""The harness gives a container what the kubelet would, with no image needed: ConfigMap
values, then `env` entries over them, Secret keys from the one table, and a clear stop for a
Secret key the table lacks."""

from __future__ import annotations

from typing import Any

import pytest

from .cluster import JWT_SECRET, environment_for, workloads


def deployment(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "kind": "ConfigMap",
            "metadata": {"name": "payments-config-x"},
            "data": {"A": "1", "B": "2"},
        },
        {
            "kind": "Deployment",
            "metadata": {"name": "payments"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "image": "registry.example/junipermarket/payments:1.0.0",
                                "envFrom": [{"configMapRef": {"name": "payments-config-x"}}],
                                "env": env,
                            }
                        ]
                    }
                }
            },
        },
    ]


def secret(name: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key, "optional": optional}}


def test_config_then_env_then_secrets_from_the_table_then_this_machines_rows() -> None:
    [payments] = workloads(
        deployment(
            [
                {"name": "B", "value": "3"},
                {"name": "AUTH_JWT_SECRET", "valueFrom": secret("juniper-auth", "AUTH_JWT_SECRET")},
                {
                    "name": "KAFKA_SASL_PASSWORD",
                    "valueFrom": secret("payments", "KAFKA_SASL_PASSWORD"),
                },
            ]
        ),
        "abc",
    ).values()
    assert payments.image == "localhost/junipermarket/payments:abc"
    env = environment_for(payments, "run1")
    assert env["A"] == "1"
    assert env["B"] == "3"
    assert env["AUTH_JWT_SECRET"] == JWT_SECRET
    assert env["KAFKA_SASL_PASSWORD"] == "payments-dev-secret"
    assert env["KAFKA_TOPIC_PREFIX"] == "run1."
    assert env["MONGODB_DATABASE"] == "run1_payments"


def test_a_secret_key_without_a_test_value_stops_the_run_unless_optional() -> None:
    [payments] = workloads(
        deployment([{"name": "NEW_KEY", "valueFrom": secret("payments-new", "NEW_KEY")}]), "abc"
    ).values()
    with pytest.raises(AssertionError, match="NEW_KEY from Secret payments-new"):
        environment_for(payments, "run1")
    [optional] = workloads(
        deployment([{"name": "NEW_KEY", "valueFrom": secret("x", "NEW_KEY", optional=True)}]), "abc"
    ).values()
    assert "NEW_KEY" not in environment_for(optional, "run1")

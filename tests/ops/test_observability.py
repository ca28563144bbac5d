"""Alerts and the dashboard speak of metrics the services really export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import invoicing.metrics
import juniper_shared.metrics
import notifications.metrics
import orders.metrics
import payments.metrics
from prometheus_client import REGISTRY

from .test_k8s_manifests import of_kind, rendered

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "observability" / "grafana-dashboard.json"
PLANNED = {"jm_consumer_lag"}
"""Referenced before it exists: the Kafka consumer lag gauge (see docs/runbook.md)."""

METRIC_MODULES = (
    juniper_shared.metrics,
    orders.metrics,
    payments.metrics,
    invoicing.metrics,
    notifications.metrics,
)


def exported_series() -> set[str]:
    assert METRIC_MODULES  # imported for their registrations
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def jm_names(expression: str) -> set[str]:
    return set(re.findall(r"\bjm_[a-z0-9_]+", expression))


def alert_rules() -> list[dict[str, Any]]:
    [rule] = of_kind(rendered("overlays/prod"), "PrometheusRule").values()
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_alerts_use_exported_metrics_only() -> None:
    exported = exported_series()
    used = set().union(*(jm_names(rule["expr"]) for rule in alert_rules()))
    assert used - PLANNED <= exported, sorted(used - PLANNED - exported)


def test_alerts_cover_what_the_runbook_promises() -> None:
    used = set().union(*(jm_names(rule["expr"]) for rule in alert_rules()))
    assert {
        "jm_consumer_lag",
        "jm_dead_letters_total",
        "jm_outbox_oldest_age_seconds",
        "jm_payment_outcomes_total",
        "jm_consumer_batch_failures_total",
        "jm_expiry_lag_seconds",
    } <= used
    assert any("kube_pod_status_ready" in rule["expr"] for rule in alert_rules())


def test_every_alert_points_to_a_runbook_section() -> None:
    runbook = (REPO / "docs" / "runbook.md").read_text()
    anchors = {
        _anchor(line.lstrip("#").strip()) for line in runbook.splitlines() if line.startswith("#")
    }
    for rule in alert_rules():
        link = rule["annotations"]["runbook"]
        assert link.startswith("docs/runbook.md#"), rule["alert"]
        assert link.split("#", 1)[1] in anchors, link


def test_dashboard_panels_query_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(queries) >= 15
    used = set().union(*(jm_names(query) for query in queries))
    assert used - PLANNED <= exported, sorted(used - PLANNED - exported)
    assert "jm_consumer_lag" in used
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")

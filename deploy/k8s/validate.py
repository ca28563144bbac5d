"""Validate rendered manifests (YAML on stdin) offline; run by validate.sh in its own venv.

Core kinds: kubernetes-validate's bundled API schemas, strict (unknown fields are errors).
CRDs: the minimal schemas in --schemas. Any other kind is an error, never a silent pass.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

# It reads and parses the large shared definitions file once per resource; once is enough.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(  # type: ignore[assignment]
    kubernetes_validate.utils.schema_contents
)

CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafkatopic-v1beta2.json",
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): "kafkauser-v1beta2.json",
    ("kafka.strimzi.io/v1beta2", "Kafka"): "kafka-v1beta2.json",
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): "kafkanodepool-v1beta2.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-v1.json",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schemas", type=Path, required=True)
    parser.add_argument("--kubernetes-version", default="1.32.0")
    parser.add_argument("--name", default="stdin")
    parser.add_argument("--json", action="store_true", help="print the resources as JSON only")
    args = parser.parse_args()
    resources = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    if args.json:
        json.dump(resources, sys.stdout)
        return 0
    problems: list[str] = []
    for resource in resources:
        where = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        problem = check(resource, args.schemas, args.kubernetes_version)
        if problem:
            problems.append(f"{args.name}: {where}: {problem}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{args.name}: {len(resources)} resources valid")
    return 0


def check(resource: dict[str, Any], schemas: Path, version: str) -> str | None:
    crd = CRD_SCHEMAS.get((resource.get("apiVersion"), resource.get("kind")))
    if crd is not None:
        schema = json.loads((schemas / crd).read_text())
        errors = sorted(
            jsonschema.Draft202012Validator(schema).iter_errors(resource), key=lambda e: e.path
        )
        if errors:
            error = errors[0]
            return f"{'.'.join(str(p) for p in error.path) or '<root>'}: {error.message}"
        return None
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(str(p) for p in error.path) or '<root>'}: {error.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"no schema for {resource.get('apiVersion')} {resource.get('kind')}"
    return None


if __name__ == "__main__":
    sys.exit(main())

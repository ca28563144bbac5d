"""AsyncAPI 3.0 documents generated from the topic registry: one per service, one for all.

Run: `python -m juniper_shared.contracts.asyncapi <output dir>` (make asyncapi).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from juniper_shared.contracts.events import Envelope
from juniper_shared.contracts.registry import TOPICS

SERVICES = ("orders", "invoicing", "payments", "notifications")


def _message_name(model: type[Envelope]) -> str:
    return model.__name__


def document(service: str | None = None) -> dict[str, Any]:
    """The AsyncAPI document of `service` (what it sends and receives), or of every topic."""
    topics = [
        topic
        for topic in TOPICS
        if service is None or topic.writer == service or service in topic.readers
    ]
    models = sorted({model for topic in topics for model in topic.events}, key=_message_name)
    _, schemas = models_json_schema(
        [(model, "serialization") for model in models], ref_template="#/components/schemas/{model}"
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in topics:
        channel_id = topic.name.replace(".", "_")
        channels[channel_id] = {
            "address": topic.name,
            "description": f"{topic.description} Key: {topic.key}. Single writer: {topic.writer}. "
            f"Poison messages go to `{topic.dlq}`.",
            "messages": {
                _message_name(model): {"$ref": f"#/components/messages/{_message_name(model)}"}
                for model in topic.events
            },
        }
        action = "send" if service == topic.writer else "receive"
        if service is None or service == topic.writer or service in topic.readers:
            operations[f"{action}_{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
            }
    messages = {
        _message_name(model): {
            "name": model.model_fields["type"].default,
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "const": model.model_fields["type"].default}
                },
            },
            "payload": {"$ref": f"#/components/schemas/{_message_name(model)}"},
        }
        for model in models
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"JuniperMarket {service or 'order processing'} events",
            "version": "1.0.0",
            "description": "Every message is one JSON envelope; `event_id` is the idempotency key.",
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.get("$defs", {})},
    }


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (*SERVICES, None):
        path = directory / f"{name or 'all'}.json"
        path.write_text(json.dumps(document(name), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/asyncapi")):
        print(written_path)

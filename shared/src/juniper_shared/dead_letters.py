"""Dead letters: what no retry can fix goes to `<topic>.dlq`, with the reason in headers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord

from juniper_shared.contracts.registry import ForgedEvent, PoisonMessage, Topic
from juniper_shared.metrics import DEAD_LETTERS, FORGED_EVENTS
from juniper_shared.producer import Header, Producer

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_BYTES = 512 * 1024
"""A dead letter keeps at most this much of the message (Kafka refuses above 1 MiB)..."""
MAX_DEAD_LETTER_HEADER_BYTES = 64 * 1024
"""...this much of its original headers..."""
MAX_DEAD_LETTER_KEY_BYTES = 4 * 1024
"""...and this much of its key."""


class DeadLetters:
    """Sends messages no retry can fix to `<topic>.dlq`, with the reason in headers.

    A dead letter always fits its topic: the value is cut at MAX_DEAD_LETTER_BYTES, the key
    at MAX_DEAD_LETTER_KEY_BYTES, and the original headers are kept only up to
    MAX_DEAD_LETTER_HEADER_BYTES (a copy that no longer fit would fail its batch forever)."""

    def __init__(self, producer: Producer, *, topic_prefix: str = "") -> None:
        self._producer = producer
        self._prefix = topic_prefix

    async def send(
        self, topic: Topic, poisoned: Sequence[tuple[ConsumerRecord[Any, Any], BaseException]]
    ) -> None:
        if not poisoned:
            return
        records = []
        for record, error in poisoned:
            if isinstance(error, ForgedEvent):
                FORGED_EVENTS.labels(topic.name).inc()
            records.append((self._prefix + topic.dlq, *_dead_letter(record, error)))
        await self._producer.send_all(records)
        DEAD_LETTERS.labels(topic.name).inc(len(poisoned))
        log.warning(
            "sent %d poison messages to %s (first: %s)",
            len(poisoned),
            topic.dlq,
            _reason(poisoned[0][1])[:200],
        )


def _reason(error: BaseException) -> str:
    if isinstance(error, PoisonMessage):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _dead_letter(
    record: ConsumerRecord[Any, Any], error: BaseException
) -> tuple[bytes | None, bytes, list[Header]]:
    """The key, value and headers of `record`'s dead-letter copy."""
    headers: list[Header] = []
    kept_bytes = 0
    dropped = 0
    for name, value in record.headers or ():
        size = len(name) + len(value or b"")
        if name.startswith("dlq-") or kept_bytes + size > MAX_DEAD_LETTER_HEADER_BYTES:
            dropped += not name.startswith("dlq-")
            continue
        kept_bytes += size
        headers.append((name, value))
    headers += [
        ("dlq-error", _reason(error)[:1000].encode()),
        ("dlq-source-topic", record.topic.encode()),
        ("dlq-source-partition", str(record.partition).encode()),
        ("dlq-source-offset", str(record.offset).encode()),
    ]
    if dropped:
        headers.append(("dlq-headers-dropped", str(dropped).encode()))
    key = record.key
    if key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES:
        headers.append(("dlq-key-truncated-from", str(len(key)).encode()))
        key = key[:MAX_DEAD_LETTER_KEY_BYTES]
    value = record.value if record.value is not None else b""
    if len(value) > MAX_DEAD_LETTER_BYTES:
        headers.append(("dlq-truncated-from", str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_BYTES]
    return key, value, headers

"""Prometheus metrics every service exposes on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from pymongo import monitoring

MESSAGES_CONSUMED = Counter(
    "jm_messages_consumed_total", "Messages handled by a consumer", ["topic", "type"]
)
MESSAGES_PUBLISHED = Counter(
    "jm_messages_published_total", "Events published to Kafka", ["topic", "type"]
)
MESSAGES_SKIPPED = Counter(
    "jm_messages_skipped_total", "Well-formed messages of types this consumer ignores", ["topic"]
)
DEAD_LETTERS = Counter("jm_dead_letters_total", "Messages sent to a dead-letter topic", ["topic"])
FORGED_EVENTS = Counter(
    "jm_forged_events_total",
    "Events refused (and dead-lettered) because their producer is not their topic's writer or "
    "their seller is not the seller of what they name",
    ["topic"],
)
BATCH_SECONDS = Histogram(
    "jm_consumer_batch_seconds", "Time to handle one consumed batch", ["topic"]
)
BATCH_FAILURES = Counter(
    "jm_consumer_batch_failures_total", "Batches that failed and will be redelivered", ["topic"]
)
CONSUMER_LAG = Gauge(
    "jm_consumer_lag",
    "Messages between the group's committed offset and the partition end",
    ["group", "topic", "partition"],
)
OUTBOX_BACKLOG = Gauge("jm_outbox_backlog", "Events stored but not yet published")
OUTBOX_OLDEST_SECONDS = Gauge(
    "jm_outbox_oldest_age_seconds", "Age of the oldest unpublished event seen by the poller"
)
DB_COMMANDS = Counter(
    "jm_db_commands_total", "Database round trips (commands sent)", ["command", "collection"]
)
DB_WRITES = Counter(
    "jm_db_documents_written_total",
    "Write statements sent (a document inserted, updated or deleted each)",
    ["collection"],
)
WRITE_STATEMENTS = {"insert": "documents", "update": "updates", "delete": "deletes"}
"""A write command's list of statements: one bulk command carries many."""
HTTP_REQUESTS = Histogram(
    "jm_http_request_seconds", "HTTP request latency", ["method", "route", "status"]
)


class CommandCounter(monitoring.CommandListener):
    """Counts every database round trip, so cost per order can be read off /metrics."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        # A command names its collection as the value of its first key ({"update": "orders"});
        # commands without one (ping, hello) count under "".
        target = event.command.get(event.command_name)
        collection = target if isinstance(target, str) else ""
        DB_COMMANDS.labels(event.command_name, collection).inc()
        statements = WRITE_STATEMENTS.get(event.command_name)
        if statements is not None:
            DB_WRITES.labels(collection).inc(len(event.command.get(statements) or ()))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

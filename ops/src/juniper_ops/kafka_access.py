"""Who may do what on Kafka: the contract's "Kafka access" table as data, applied as `admin`.

    python -m juniper_ops.kafka_access provision [--prefix P] [--wait SECONDS]
    python -m juniper_ops.kafka_access set-password PRINCIPAL   (new password on stdin)

`provision` creates the contract's topics and their dead-letter topics (no principal but `admin`
may create topics), then grants each principal its ACLs and waits until the broker enforces
them. It reads the connection from the environment like every client (KAFKA_BOOTSTRAP_SERVERS,
KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*) and must run as the super user `admin`.

Runs that share one broker prefix their topic and group names (KAFKA_TOPIC_PREFIX). A prefix
is provisioned like the bare names: its own topics and LITERAL ACLs on `<prefix><name>`.
Kafka's PREFIXED patterns match the start of a name, and the run's prefix comes before the
contract's name, so no one pattern can say "orders.placed under any prefix"; per-prefix
LITERAL grants keep each principal exactly as narrow in a test run as in production, and
`revoke` removes them again when the run ends. Groups likewise: a service commits under
exactly `<prefix><its name>` (LITERAL), so no service can join or reset another's group.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from juniper_shared.contracts.registry import (
    INVOICES_EVENTS,
    ORDERS_EVENTS,
    ORDERS_PLACED,
    PAYMENTS_EVENTS,
    TOPICS,
    Topic,
)
from juniper_shared.settings import KafkaSettings
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import SecurityDisabledError

from juniper_ops.dlq import REPLAY_GROUP

SUPER_USER = "admin"
EVERY_TOPIC = "*"  # Kafka's wildcard resource name
CLUSTER = "kafka-cluster"  # the one name of the CLUSTER resource


@dataclass(frozen=True)
class Access:
    """One principal's row of the contract table. A reader also writes the dead-letter topics
    of what it reads ("its DLQs") and commits its offsets under `group`."""

    principal: str
    writes: tuple[Topic, ...] = ()
    reads: tuple[Topic, ...] = ()
    group: str | None = None

    def written_names(self) -> tuple[str, ...]:
        return tuple(topic.name for topic in self.writes) + tuple(t.dlq for t in self.reads)


TABLE: tuple[Access, ...] = (
    Access("checkout", writes=(ORDERS_PLACED,)),
    Access(
        "orders", writes=(ORDERS_EVENTS,), reads=(ORDERS_PLACED, INVOICES_EVENTS), group="orders"
    ),
    Access(
        "invoicing",
        writes=(INVOICES_EVENTS,),
        reads=(ORDERS_EVENTS, PAYMENTS_EVENTS),
        group="invoicing",
    ),
    Access(
        "payments",
        writes=(PAYMENTS_EVENTS,),
        reads=(INVOICES_EVENTS, ORDERS_PLACED, ORDERS_EVENTS),
        group="payments",
    ),
    Access("notifications", reads=(ORDERS_EVENTS, INVOICES_EVENTS), group="notifications"),
)
"""The services' group ids are their names (each service's `GROUP_ID`)."""

OPS = "ops"
"""The operator CLI reads and writes every topic (DLQ replay) and commits replay progress."""

PRINCIPALS: tuple[str, ...] = (*(row.principal for row in TABLE), OPS, SUPER_USER)


def topic_names(prefix: str = "") -> list[str]:
    """Every topic of the contract and its dead-letter topic, under `prefix`."""
    return [prefix + name for topic in TOPICS for name in (topic.name, topic.dlq)]


def _acl(principal: str, operation: ACLOperation, kind: ResourceType, name: str) -> ACL:
    return ACL(
        principal=f"User:{principal}",
        host="*",
        operation=operation,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(kind, name, ACLResourcePatternType.LITERAL),
    )


def acls(prefix: str = "") -> list[ACL]:
    """The ACLs of the table for topics and groups under `prefix`.

    Without a prefix this includes what no prefix changes: the cluster's IDEMPOTENT_WRITE for
    the writers' idempotent producers, and `ops` on every topic and its replay group."""
    granted: list[ACL] = []
    for row in TABLE:
        for name in row.written_names():
            granted.append(
                _acl(row.principal, ACLOperation.WRITE, ResourceType.TOPIC, prefix + name)
            )
        for topic in row.reads:
            granted.append(
                _acl(row.principal, ACLOperation.READ, ResourceType.TOPIC, prefix + topic.name)
            )
        if row.group is not None:
            granted.append(
                _acl(row.principal, ACLOperation.READ, ResourceType.GROUP, prefix + row.group)
            )
    if not prefix:
        granted += [
            _acl(row.principal, ACLOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER)
            for row in TABLE
            if row.written_names()
        ]
        granted += [
            _acl(OPS, ACLOperation.READ, ResourceType.TOPIC, EVERY_TOPIC),
            _acl(OPS, ACLOperation.WRITE, ResourceType.TOPIC, EVERY_TOPIC),
            _acl(OPS, ACLOperation.READ, ResourceType.GROUP, REPLAY_GROUP),
            _acl(OPS, ACLOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER),
        ]
    return granted


def connect(kafka: KafkaSettings, *, wait_seconds: float = 30.0) -> KafkaAdminClient:
    """An admin client; retries until the broker answers or `wait_seconds` passed."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return KafkaAdminClient(
                **kafka.kafka_client_options(),
                client_id="juniper-ops.kafka-access",
                bootstrap_timeout_ms=5_000,
                request_timeout_ms=15_000,
            )
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def provision(
    admin: KafkaAdminClient, *, prefix: str = "", partitions: int | None = None
) -> list[ACL]:
    """Create the topics under `prefix` (existing ones are kept) and grant the table's ACLs;
    returns once the broker enforces them."""
    settings = {} if partitions is None else {"num_partitions": partitions}
    admin.create_topics({name: dict(settings) for name in topic_names(prefix)}, raise_errors=False)
    # A new topic reaches the metadata a moment after the create answers (longer under load).
    deadline = time.monotonic() + 30
    while missing := set(topic_names(prefix)) - set(admin.list_topics()):
        if time.monotonic() >= deadline:
            raise RuntimeError(f"topics not created: {sorted(missing)}")
        time.sleep(0.2)
    granted = acls(prefix)
    failed = admin.create_acls(granted)["failed"]
    if SecurityDisabledError in failed:  # a broker without an authorizer (e.g. PLAINTEXT in Docker)
        return []
    if failed:
        raise RuntimeError(f"ACLs refused: {sorted({error.__name__ for error in failed})}")
    _wait_enforced(admin, granted)
    return granted


def revoke(admin: KafkaAdminClient, *, prefix: str) -> None:
    """Remove the ACLs `provision(prefix=...)` granted (the topics stay; a test's are tiny)."""
    admin.delete_acls(acls(prefix))


def _wait_enforced(admin: KafkaAdminClient, granted: Sequence[ACL], timeout: float = 15.0) -> None:
    """A new ACL reaches the broker's authorizer through the metadata log, a moment after
    create_acls answers: wait until the broker describes every one of them."""
    deadline = time.monotonic() + timeout
    wanted = {_key(acl) for acl in granted}
    while True:
        seen: set[tuple[Any, ...]] = set()
        for kind in {acl.resource_pattern.resource_type for acl in granted}:
            found, _error = admin.describe_acls(_every_acl_of(kind))
            seen.update(_key(acl) for acl in found)
        if wanted <= seen:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{len(wanted - seen)} ACLs not in force after {timeout} s")
        time.sleep(0.2)


def _every_acl_of(kind: ResourceType) -> ACLFilter:
    return ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(kind, None, ACLResourcePatternType.ANY),
    )


def _key(acl: ACL) -> tuple[Any, ...]:
    pattern = acl.resource_pattern
    return (
        acl.principal,
        int(acl.operation),
        int(pattern.resource_type),
        pattern.resource_name,
        int(pattern.pattern_type),
    )


def set_password(admin: KafkaAdminClient, principal: str, password: str) -> None:
    """Replace `principal`'s SCRAM-SHA-512 credential (clients reconnecting need the new one)."""
    admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(principal, ScramMechanism.SCRAM_SHA_512, password)]
    )


def _lines(granted: Sequence[ACL]) -> Iterator[str]:
    for acl in granted:
        pattern = acl.resource_pattern
        yield (
            f"{acl.principal} {acl.operation.name} "
            f"{pattern.resource_type.name}:{pattern.resource_name}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m juniper_ops.kafka_access")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("provision", help="create the topics, grant the ACLs (as admin)")
    run.add_argument("--prefix", default="", help="topic and group prefix (test runs)")
    run.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the broker")
    run.add_argument("--verbose", action="store_true", help="print every ACL")
    rotate = commands.add_parser("set-password", help="new SCRAM password (from stdin)")
    rotate.add_argument("principal", choices=PRINCIPALS)
    args = parser.parse_args(argv)
    kafka = KafkaSettings()
    if args.command == "set-password":
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            print("error: the password must have at least 8 characters", file=sys.stderr)
            return 2
        admin = connect(kafka)
        try:
            set_password(admin, args.principal, password)
        finally:
            admin.close()
        print(f"{args.principal}: SCRAM-SHA-512 password replaced")
        return 0
    admin = connect(kafka, wait_seconds=args.wait)
    try:
        granted = provision(admin, prefix=args.prefix)
    finally:
        admin.close()
    print(f"kafka access: {len(topic_names())} topics, {len(granted)} ACLs in force")
    if args.verbose:
        for line in _lines(granted):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

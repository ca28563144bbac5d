"""The ACL table is the contract's "Kafka access" table, and agrees with the topic registry."""

from __future__ import annotations

from juniper_ops.kafka_access import OPS, PRINCIPALS, TABLE, acls, topic_names
from juniper_shared.contracts.registry import TOPICS


def granted(principal: str, operation: str, prefix: str = "") -> set[str]:
    return {
        acl.resource_pattern.resource_name
        for acl in acls(prefix)
        if acl.principal == f"User:{principal}"
        and acl.operation.name == operation
        and acl.resource_pattern.resource_type.name == "TOPIC"
    }


def test_each_topic_is_written_by_its_one_writer_and_read_by_its_readers() -> None:
    for topic in TOPICS:
        writers = {row.principal for row in TABLE if topic.name in granted(row.principal, "WRITE")}
        readers = {row.principal for row in TABLE if topic.name in granted(row.principal, "READ")}
        assert writers == {topic.writer}
        assert readers == set(topic.readers)
        # A consumer dead-letters what it cannot handle: its readers write the DLQ.
        dlq_writers = {
            row.principal for row in TABLE if topic.dlq in granted(row.principal, "WRITE")
        }
        assert dlq_writers == set(topic.readers)


def test_the_contract_rows() -> None:
    assert {row.principal: sorted(granted(row.principal, "WRITE")) for row in TABLE} == {
        "checkout": ["orders.placed"],
        "orders": ["invoices.events.dlq", "orders.events", "orders.placed.dlq"],
        "invoicing": ["invoices.events", "orders.events.dlq", "payments.events.dlq"],
        "payments": [
            "invoices.events.dlq",
            "orders.events.dlq",
            "orders.placed.dlq",
            "payments.events",
        ],
        "notifications": ["invoices.events.dlq", "orders.events.dlq"],
    }
    assert granted(OPS, "READ") == granted(OPS, "WRITE") == {"*"}
    assert set(PRINCIPALS) == {
        "checkout",
        "orders",
        "invoicing",
        "payments",
        "notifications",
        "ops",
        "admin",
    }


def test_a_prefix_grants_the_same_rows_on_its_own_names_only() -> None:
    for row in TABLE:
        bare = granted(row.principal, "WRITE") | granted(row.principal, "READ")
        prefixed = granted(row.principal, "WRITE", "t1.") | granted(row.principal, "READ", "t1.")
        assert prefixed == {"t1." + name for name in bare}
    groups = {
        acl.resource_pattern.resource_name
        for acl in acls("t1.")
        if acl.resource_pattern.resource_type.name == "GROUP"
    }
    assert groups == {"t1." + row.group for row in TABLE if row.group}
    assert set(topic_names("t1.")) >= {"t1.orders.placed", "t1.orders.placed.dlq"}

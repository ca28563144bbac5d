"""FerretDB serves lookups by ``_id`` from PostgreSQL's ``_id`` index.

deploy/local/ferretdb/1-index-lookups.patch makes FerretDB 1.24 push ``{_id: x}``
down as ``_jsonb->'_id' = $n``, the expression of the unique btree index that
FerretDB creates on every collection table. Without the patch the filter is
``_jsonb->$1 @> $2`` and every lookup by ``_id`` is a sequential scan whose cost
grows with the collection.

This test proves it by counting, not by timing: PostgreSQL's per-table counters
(``pg_stat_user_tables.idx_scan`` / ``seq_scan``) must show one index scan per
``find_one({"_id": ...})`` and no sequential scan.

Needs the real infrastructure (``deploy/local/infra.sh up postgres ferretdb``):
FerretDB at ``MONGODB_URL`` (default ``mongodb://127.0.0.1:27017``) and its
PostgreSQL at 127.0.0.1:``JM_PG_PORT`` (default 5432, user postgres, database
ferretdb), read with ``psql``. It fails (never skips) when they are not there.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.integration

MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
PG_HOST = "127.0.0.1"
PG_PORT = os.environ.get("JM_PG_PORT", "5432")
PG_DATABASE = "ferretdb"  # FerretDB's --postgresql-url database (see infra.sh)

DOCS = 2_000
LOOKUPS = 200
STATS_WAIT_S = 30.0  # bound for each wait on the counters (they arrive up to ~10 s late)


def _psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    assert candidates, "psql not found (install postgresql-client or run deploy/local/infra.sh up)"
    return candidates[-1]


def _psql(sql: str) -> str:
    result = subprocess.run(
        [
            _psql_binary(),
            "-X",
            "-h",
            PG_HOST,
            "-p",
            PG_PORT,
            "-U",
            "postgres",
            "-d",
            PG_DATABASE,
            "-Atqc",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"psql failed: {result.stderr.strip()}"
    return result.stdout.strip()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _table_of(database: str, collection: str) -> str:
    """FerretDB maps a database to a PostgreSQL schema of the same name and records
    each collection's table name in that schema's ``_ferretdb_database_metadata``
    (one jsonb row per collection: ``_id`` = collection name, ``table`` = table)."""
    table = _psql(
        f"SELECT _jsonb->>'table' FROM {_ident(database)}._ferretdb_database_metadata "
        f"WHERE _jsonb->>'_id' = {_literal(collection)}"
    )
    assert table, f"no FerretDB metadata row for {database}.{collection}"
    return table


def _stats(schema: str, table: str, third: str = "n_tup_ins") -> tuple[int, int, int]:
    """(seq_scan, idx_scan, `third`) of one table, as flushed so far; `third` is another
    column of pg_stat_user_tables (n_tup_ins unless told)."""
    row = _psql(
        f"SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0), coalesce({third}, 0) "
        f"FROM pg_stat_user_tables WHERE schemaname = {_literal(schema)} "
        f"AND relname = {_literal(table)}"
    )
    assert row, f"table {schema}.{table} not in pg_stat_user_tables"
    seq, idx, counted = row.split("|")
    return int(seq), int(idx), int(counted)


def _stats_once(
    schema: str, table: str, ready: Callable[[int, int, int], bool]
) -> tuple[int, int, int]:
    """`_stats` once `ready(seq_scan, idx_scan, n_tup_ins)` holds, or after STATS_WAIT_S: the
    counters arrive asynchronously from FerretDB's pooled sessions (bounded polling)."""
    deadline = time.monotonic() + STATS_WAIT_S
    stats = _stats(schema, table)
    while not ready(*stats) and time.monotonic() < deadline:
        time.sleep(0.25)
        stats = _stats(schema, table)
    return stats


def test_find_one_by_string_id_uses_the_id_index() -> None:
    database = f"infra_id_index_{uuid.uuid4().hex[:12]}"
    collection = "docs"
    client: MongoClient[dict[str, Any]] = MongoClient(MONGODB_URL, serverSelectionTimeoutMS=10_000)
    try:
        coll = client[database][collection]
        coll.insert_many(
            [{"_id": f"doc-{i:05d}", "n": i, "pad": "x" * 200} for i in range(DOCS)],
            ordered=False,
        )
        table = _table_of(database, collection)
        # The index FerretDB made for _id is on exactly the expression the patch emits.
        indexdefs = _psql(
            f"SELECT indexdef FROM pg_indexes WHERE schemaname = {_literal(database)} AND tablename = {_literal(table)}"
        )
        assert "((_jsonb -> '_id'::text))" in indexdefs, indexdefs

        # Settle the counters of the setup first. A PostgreSQL backend flushes its table
        # counters when it goes idle, up to ~10 s late (PGSTAT_IDLE_INTERVAL), and the setup
        # has one sequential scan of its own: CREATE UNIQUE INDEX on the new, empty table.
        # Wait (bounded) until the inserts and that scan show, then take the baseline.
        seq_before, idx_before, inserted = _stats_once(
            database, table, lambda seq, _, inserted: inserted >= DOCS and seq >= 1
        )
        assert inserted == DOCS, f"pg_stat_user_tables shows {inserted} inserts, not {DOCS}"

        for i in range(0, DOCS, DOCS // LOOKUPS):
            doc = coll.find_one({"_id": f"doc-{i:05d}"})
            assert doc is not None
            assert doc["n"] == i
        assert coll.find_one({"_id": "doc-missing"}) is None  # one more index scan

        seq_after, idx_after, _ = _stats_once(
            database, table, lambda _, idx, __: idx - idx_before >= LOOKUPS + 1
        )

        assert idx_after - idx_before >= LOOKUPS + 1, (
            f"idx_scan grew by {idx_after - idx_before} (seq_scan by {seq_after - seq_before}) "
            f"after {LOOKUPS + 1} find_one by _id: the _id index is not used "
            "(is FerretDB built with deploy/local/ferretdb/1-index-lookups.patch?)"
        )
        assert seq_after == seq_before, (
            f"seq_scan grew by {seq_after - seq_before} during find_one by _id"
        )

        # FerretDB's explain shows PostgreSQL's plan for the same pushdown.
        plan = client[database].command(
            "explain", {"find": collection, "filter": {"_id": "doc-00042"}}
        )
        assert "Index Scan" in json.dumps(plan.get("queryPlanner", {}), default=str), plan
    finally:
        client.drop_database(database)
        client.close()


def test_find_by_id_in_a_list_uses_the_id_index_and_finds_exactly_those() -> None:
    """Grouped lookups (`{_id: {$in: [...]}}`, see juniper_shared.batching) are one index scan
    each, with the same answers as one find_one per id; non-string lists still work."""
    database = f"infra_id_in_{uuid.uuid4().hex[:12]}"
    collection = "docs"
    client: MongoClient[dict[str, Any]] = MongoClient(MONGODB_URL, serverSelectionTimeoutMS=10_000)
    try:
        coll = client[database][collection]
        coll.insert_many(
            [{"_id": f"doc-{i:05d}", "n": i, "pad": "x" * 200} for i in range(DOCS)]
            + [{"_id": 7, "n": -7}],
            ordered=False,
        )
        table = _table_of(database, collection)
        seq_before, idx_before, _ = _stats_once(
            database, table, lambda seq, _, inserted: inserted >= DOCS + 1 and seq >= 1
        )

        groups = 50
        for g in range(groups):
            wanted = [f"doc-{(g * 37 + k * 11) % DOCS:05d}" for k in range(8)] + ["doc-missing"]
            found = {doc["_id"]: doc["n"] for doc in coll.find({"_id": {"$in": wanted}})}
            assert found == {i: int(i[4:]) for i in wanted if i != "doc-missing"}

        seq_after, idx_after, _ = _stats_once(
            database, table, lambda _, idx, __: idx - idx_before >= groups
        )
        assert idx_after - idx_before >= groups, (
            f"idx_scan grew by {idx_after - idx_before} after {groups} finds with $in on _id "
            "(is FerretDB built with deploy/local/ferretdb/1-index-lookups.patch?)"
        )
        assert seq_after == seq_before, f"seq_scan grew by {seq_after - seq_before}"

        # Not pushed down (a number in the list), still answered correctly.
        mixed = {doc["_id"] for doc in coll.find({"_id": {"$in": [7, "doc-00003"]}})}
        assert mixed == {7, "doc-00003"}
    finally:
        client.drop_database(database)
        client.close()


def test_equality_on_an_indexed_field_uses_its_gin_index_and_keeps_mongodb_semantics() -> None:
    """A seller's orders (`{seller_id: x}`) and the outbox poller's `{outbox_pending: true}`
    come from the field's index, not a scan; an array holding the value still matches."""
    database = f"infra_field_index_{uuid.uuid4().hex[:12]}"
    collection = "orders"
    client: MongoClient[dict[str, Any]] = MongoClient(MONGODB_URL, serverSelectionTimeoutMS=10_000)
    try:
        coll = client[database][collection]
        coll.insert_many(
            [
                {"_id": f"ord-{i:05d}", "seller_id": f"seller-{i % 200}", "pending": i % 500 == 0}
                for i in range(DOCS)
            ]
            + [{"_id": "ord-shared", "seller_id": ["seller-7", "seller-8"], "pending": False}],
            ordered=False,
        )
        coll.create_index([("seller_id", 1), ("placed_at", -1)])
        coll.create_index([("pending", 1)])
        table = _table_of(database, collection)
        indexdefs = _psql(
            f"SELECT indexdef FROM pg_indexes WHERE schemaname = {_literal(database)} "
            f"AND tablename = {_literal(table)}"
        )
        assert indexdefs.count("USING gin") == 2, indexdefs

        # The setup's own sequential scans are one per index build: FerretDB's unique _id
        # index on the new table and the two created above. Their counters may flush after
        # the inserts' (another pooled backend), so the baseline waits (bounded) for all three.
        seq_before, idx_before, _ = _stats_once(
            database, table, lambda seq, __, inserted: inserted >= DOCS + 1 and seq >= 3
        )

        lookups = 40
        for s in range(lookups):
            found = {doc["_id"] for doc in coll.find({"seller_id": f"seller-{s}"})}
            expected = {f"ord-{i:05d}" for i in range(s, DOCS, 200)}
            if s in (7, 8):
                expected.add("ord-shared")  # MongoDB's equality matches inside arrays
            assert found == expected
        assert coll.count_documents({"seller_id": "seller-3"}) == DOCS // 200
        pending = {doc["_id"] for doc in coll.find({"pending": True})}
        assert pending == {f"ord-{i:05d}" for i in range(0, DOCS, 500)}

        seq_after, idx_after, _ = _stats_once(
            database, table, lambda _, idx, __: idx - idx_before >= lookups + 2
        )
        assert idx_after - idx_before >= lookups + 2, (
            f"idx_scan grew by {idx_after - idx_before} after {lookups + 2} lookups by field"
        )
        assert seq_after == seq_before, f"seq_scan grew by {seq_after - seq_before}"
    finally:
        client.drop_database(database)
        client.close()


EXACT = "junipermarket:exact-pushdown"  # juniper_shared.mongo.EXACT_PUSHDOWN


def _newest_first_page(
    documents: list[dict[str, Any]], status: str | None, skip: int, limit: int
) -> tuple[list[str], int]:
    """The All Orders page and total computed here, by MongoDB's rules, for comparison."""
    matching = [
        d
        for d in documents
        if d["seller_id"] == "big"
        and d.get("hidden") is not True
        and (status is None or d["status"] == status)
    ]
    matching.sort(key=lambda d: (d["placed_at"], d["_id"]), reverse=True)
    return [d["_id"] for d in matching[skip : skip + limit]], len(matching)


def test_a_query_vouched_exact_is_sorted_limited_and_counted_from_a_btree_index() -> None:
    """A seller's All Orders page (`juniper_shared.mongo.EXACT_PUSHDOWN`): the same rows and
    total as MongoDB's rules give, read from the `_btree` index a page at a time, not the
    seller's every order; the comment is what switches it on."""
    database = f"infra_exact_{uuid.uuid4().hex[:12]}"
    collection = "orders"
    client: MongoClient[dict[str, Any]] = MongoClient(MONGODB_URL, serverSelectionTimeoutMS=10_000)
    try:
        coll = client[database][collection]
        start = datetime(2026, 1, 1, tzinfo=UTC)
        documents: list[dict[str, Any]] = []
        for i in range(DOCS):
            document: dict[str, Any] = {
                "_id": f"ord-{i:05d}",
                "seller_id": "big" if i % 4 else f"small-{i % 50}",
                # Ties on placed_at (every fifth order shares one) are ordered by _id.
                "placed_at": start + timedelta(seconds=0 if i % 5 == 0 else i),
                "status": ("pending", "approved", "rejected")[i % 3],
                "pad": "x" * 300,
            }
            if i % 7:  # the rest have no such field, which `$ne: true` matches
                document["hidden"] = i % 7 == 1
            documents.append(document)
        coll.insert_many(documents, ordered=False)
        coll.create_index(
            [("seller_id", 1), ("placed_at", -1), ("_id", -1)], name="seller_newest_first_btree"
        )
        table = _table_of(database, collection)
        indexdefs = _psql(
            f"SELECT indexdef FROM pg_indexes WHERE schemaname = {_literal(database)} "
            f"AND tablename = {_literal(table)}"
        )
        assert "USING gin" not in indexdefs, indexdefs
        assert "((_jsonb -> 'placed_at'::text)) DESC NULLS LAST" in indexdefs, indexdefs
        _psql(f"ANALYZE {_ident(database)}.{_ident(table)}")  # as autovacuum would, in time
        fetched_before = _tuples_fetched_once(database, table)

        pages = 0
        for status in (None, "pending"):
            for page in (1, 2, 7):
                query: dict[str, Any] = {"seller_id": "big", "hidden": {"$ne": True}}
                if status is not None:
                    query["status"] = status
                skip = (page - 1) * 25
                rows = [
                    d["_id"]
                    for d in coll.find(query, {"_id": 1}, comment=EXACT)
                    .sort([("placed_at", -1), ("_id", -1)])
                    .skip(skip)
                    .limit(25)
                ]
                pages += 1
                expected_rows, expected_total = _newest_first_page(documents, status, skip, 25)
                assert rows == expected_rows, (status, page)
                total = client[database].command(
                    {"count": collection, "query": query, "comment": EXACT}
                )["n"]
                assert total == expected_total, (status, page)

        # The pages read from the index in its order: (skip + 25) rows each, plus the hidden
        # ones passed over, not the seller's 1,500 orders per page (the counts fetch none
        # from the heap through an index scan; they are bitmap scans).
        fetched_after = _tuples_fetched_once(database, table)
        seller_orders = sum(1 for d in documents if d["seller_id"] == "big")
        assert 0 < fetched_after - fetched_before < pages * seller_orders // 3, (
            f"{fetched_after - fetched_before} rows fetched through the index for {pages} pages "
            f"of a seller with {seller_orders} orders"
        )

        # The comment is the promise, so it decides: an order that breaks it (an array of
        # sellers) is matched by MongoDB's rules without it, and by the exact `=` with it.
        coll.insert_one(
            {"_id": "ord-shared", "seller_id": ["big", "other"], "placed_at": start, "status": "x"}
        )
        query = {"seller_id": "big", "status": "x"}
        assert coll.count_documents(query) == 1
        assert client[database].command({"count": collection, "query": query})["n"] == 1
        assert (
            client[database].command({"count": collection, "query": query, "comment": EXACT})["n"]
            == 0
        )

        # A filter the pushdown cannot take exactly ($gt) is answered as without the comment.
        wide = {"seller_id": "big", "placed_at": {"$gt": start + timedelta(seconds=DOCS - 40)}}
        vouched = [d["_id"] for d in coll.find(wide, comment=EXACT).sort("_id", -1).limit(5)]
        plain = [d["_id"] for d in coll.find(wide).sort("_id", -1).limit(5)]
        assert vouched == plain and len(plain) == 5
    finally:
        client.drop_database(database)
        client.close()


def _tuples_fetched_once(schema: str, table: str) -> int:
    """The table's idx_tup_fetch once its counters stop moving (bounded): they are flushed by
    FerretDB's pooled sessions up to ~10 s late."""
    deadline = time.monotonic() + STATS_WAIT_S
    last = _stats(schema, table, "idx_tup_fetch")
    stable_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable_since < 12:
        time.sleep(0.5)
        current = _stats(schema, table, "idx_tup_fetch")
        if current != last:
            last, stable_since = current, time.monotonic()
    return last[2]

"""A stored document reads back exactly as written (FerretDB carries our one-pass decoder).

deploy/local/ferretdb/3-one-pass-decoding.patch replaces FerretDB 1.24's level-by-level decoding
of stored documents with one parse converted by the stored type schema. A decoder that mixed up
a type (an int64 read back as a double, a datetime as a string, an empty array as null) or the
order of fields would change what every service reads; this round-trips every type the services
store, nested the way an order is.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Int64, ObjectId
from bson.codec_options import CodecOptions
from bson.son import SON
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")


def order_like() -> SON[str, Any]:
    line = SON(
        [
            ("sku", "MUG-1"),
            ("quantity", 3),
            ("unit_price", SON([("amount", "12.50"), ("currency", "USD")])),
            ("discount", None),
        ]
    )
    return SON(
        [
            ("_id", "ord-1"),
            ("version", 7),
            ("big", Int64(2**53 + 1)),
            ("ratio", 0.1),
            ("whole_double", 2.0),
            ("gated", True),
            ("cancelled", False),
            ("placed_at", datetime(2026, 12, 6, 10, 30, 15, 123000, tzinfo=UTC)),
            ("oid", ObjectId("656f1e2a9b1e8a0001a2b3c4")),
            ("payload", b"\x00\x01\xfe\xff"),  # binary, subtype 0
            ("text", 'quote " backslash \\ unicode é 🍵 newline \n'),
            ("empty_list", []),
            ("empty_doc", SON()),
            ("lines", [line, SON(line, quantity=1)]),
            # FerretDB 1.24 stores no array directly inside an array; documents in arrays nest.
            (
                "nested",
                [
                    SON([("mixed", [1, "two", 3.5, None])]),
                    SON([("deep", SON([("deeper", [True])]))]),
                ],
            ),
            ("marks", ["a:b", "c:d"]),
        ]
    )


async def test_a_document_of_every_stored_type_reads_back_as_written() -> None:
    client: AsyncMongoClient[SON[str, Any]] = AsyncMongoClient(
        MONGODB_URL, document_class=SON, tz_aware=True
    )
    database = f"test_decoding_{uuid.uuid4().hex[:8]}"
    collection = client[database].get_collection(
        "docs", codec_options=CodecOptions(document_class=SON, tz_aware=True)
    )
    try:
        written = order_like()
        await collection.insert_one(written)

        read = await collection.find_one({"_id": "ord-1"})
        listed = [document async for document in collection.find({})]

        for document in (read, listed[0]):
            assert document is not None
            assert list(document.items()) == list(written.items())  # values and field order
            assert type(document["big"]) is Int64
            assert type(document["whole_double"]) is float
            assert type(document["version"]) is int
    finally:
        await client.drop_database(database)
        await client.close()

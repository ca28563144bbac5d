"""RecentDocuments: the newest version kept, each read a copy of its own, bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from bson.codec_options import CodecOptions
from juniper_shared.recent import RecentDocuments

CODEC = CodecOptions(tz_aware=True, tzinfo=UTC)


def test_a_document_comes_back_as_it_was_remembered() -> None:
    recent = RecentDocuments(CODEC)
    placed = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    recent.remember({"_id": "o-1", "version": 1, "placed_at": placed, "items": [{"qty": 2}]})
    assert recent.get("o-1") == {
        "_id": "o-1",
        "version": 1,
        "placed_at": placed,
        "items": [{"qty": 2}],
    }
    assert recent.get("o-2") is None


def test_each_read_is_a_copy_the_caller_may_change() -> None:
    recent = RecentDocuments(CODEC)
    recent.remember({"_id": "o-1", "version": 1, "items": [{"qty": 2}]})
    first = recent.get("o-1")
    assert first is not None
    first["items"][0]["qty"] = 9
    assert recent.get("o-1") == {"_id": "o-1", "version": 1, "items": [{"qty": 2}]}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    recent = RecentDocuments(CODEC)
    recent.remember({"_id": "o-1", "version": 3, "status": "accepted"})
    recent.remember({"_id": "o-1", "version": 2, "status": "pending"})
    assert recent.get("o-1") == {"_id": "o-1", "version": 3, "status": "accepted"}
    recent.remember({"_id": "o-1", "version": 4, "status": "cancelled"})
    assert recent.get("o-1") == {"_id": "o-1", "version": 4, "status": "cancelled"}


def test_forgotten_documents_and_the_least_recently_remembered_beyond_capacity_are_gone() -> None:
    recent = RecentDocuments(CODEC, capacity=2)
    for n in (1, 2, 3):
        recent.remember({"_id": f"o-{n}", "version": 1})
    assert [recent.get(f"o-{n}") is not None for n in (1, 2, 3)] == [False, True, True]
    recent.forget("o-3")
    assert recent.get("o-3") is None
    assert len(recent) == 1


async def test_get_or_read_reads_once_and_then_answers_from_the_copy() -> None:
    recent = RecentDocuments(CODEC)
    reads: list[str] = []

    async def read(key: str) -> dict[str, object] | None:
        reads.append(key)
        return {"_id": key, "version": 2} if key == "o-1" else None

    assert await recent.get_or_read("o-1", read) == {"_id": "o-1", "version": 2}
    assert await recent.get_or_read("o-1", read) == {"_id": "o-1", "version": 2}
    assert await recent.get_or_read("o-1", read, recent=False) == {"_id": "o-1", "version": 2}
    assert await recent.get_or_read("o-9", read) is None
    assert reads == ["o-1", "o-1", "o-9"]

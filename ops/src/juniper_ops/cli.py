"""`python -m juniper_ops`: dead letters, outbox backlog and dev tokens, for operators."""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from juniper_shared.auth import issue_token
from pymongo import AsyncMongoClient

from juniper_ops import migrations
from juniper_ops.dlq import (
    DeadLetter,
    DeadLetterTopic,
    UnknownTopic,
    read_dead_letters,
    replay_dead_letters,
)
from juniper_ops.outbox import OUTBOX_COLLECTIONS, Backlog, outbox_backlog
from juniper_ops.settings import DEV_JWT_SECRET, OpsSettings

USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m juniper_ops",
        description="JuniperMarket operator tools. Reads KAFKA_BOOTSTRAP_SERVERS, the KAFKA_SASL_* "
        "credentials (principal `ops`), MONGODB_URL, KAFKA_TOPIC_PREFIX, MONGODB_DATABASE and "
        "AUTH_JWT_SECRET like the services.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    dlq = commands.add_parser("dlq", help="inspect and replay dead-letter topics")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_commands.add_parser("list", help="show a topic's dead letters, oldest first")
    listing.add_argument("topic", help="e.g. orders.placed (or orders.placed.dlq)")
    listing.add_argument("--limit", type=_positive, default=50)
    replay = dlq_commands.add_parser(
        "replay", help="republish dead letters not replayed yet to their original topic"
    )
    replay.add_argument("topic", help="e.g. orders.placed (or orders.placed.dlq)")
    replay.add_argument("--limit", type=_positive, default=1000)
    replay.add_argument(
        "--dry-run", action="store_true", help="show what would be replayed; send nothing"
    )

    outbox = commands.add_parser("outbox", help="events stored but not yet published")
    outbox.add_argument("service", choices=sorted(OUTBOX_COLLECTIONS))

    migrate = commands.add_parser("migrate", help="one-off data migrations (docs/runbook.md)")
    migrate.add_argument(
        "migration",
        choices=["buyer-link-ids"],
        help="buyer-link-ids: re-key the orders service's buyer links (orders database)",
    )
    migrate.add_argument("--dry-run", action="store_true", help="count; change nothing")

    token = commands.add_parser("token", help="issue a JWT for a seller (development)")
    token.add_argument("seller_id")
    token.add_argument(
        "--ttl",
        type=_positive,
        default=3600,
        help="seconds (default 3600; at most AUTH_MAX_TOKEN_TTL_SECONDS)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    settings = OpsSettings()
    try:
        if args.command == "token":
            return _token(args, settings, out)
        if args.command == "outbox":
            return asyncio.run(_outbox(args.service, settings, out))
        if args.command == "migrate":
            return asyncio.run(_migrate(args.dry_run, settings, out))
        topic = DeadLetterTopic.named(args.topic, prefix=settings.kafka_topic_prefix)
        if args.dlq_command == "list":
            return asyncio.run(_dlq_list(topic, args.limit, settings, out))
        return asyncio.run(_dlq_replay(topic, args.limit, args.dry_run, settings, out))
    except UnknownTopic as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR


def _token(args: Any, settings: OpsSettings, out: TextIO) -> int:
    if settings.auth_jwt_secret is None:
        print(f"note: AUTH_JWT_SECRET is not set; signing with {DEV_JWT_SECRET!r}", file=sys.stderr)
        secret = DEV_JWT_SECRET
        # The dev secret is short on purpose; PyJWT's key-length warning adds nothing here.
        warnings.filterwarnings("ignore", message=".*HMAC key.*")
    else:
        secret = settings.auth_jwt_secret.get_secret_value()
    if args.ttl > settings.auth_max_token_ttl_seconds:
        print(
            f"error: --ttl {args.ttl} exceeds AUTH_MAX_TOKEN_TTL_SECONDS "
            f"({settings.auth_max_token_ttl_seconds}); the services would refuse the token",
            file=sys.stderr,
        )
        return USAGE_ERROR
    try:
        token = issue_token(args.seller_id, secret, ttl_seconds=args.ttl)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print(token, file=out)
    return 0


async def _migrate(dry_run: bool, settings: OpsSettings, out: TextIO) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        db = client[settings.mongodb_database or "orders"]
        done = await migrations.buyer_link_ids(db, dry_run=dry_run)
    finally:
        await client.close()
    verb = "would re-key" if dry_run else "re-keyed"
    print(f"buyer links: {done.examined} examined, {verb} {done.rewritten}", file=out)
    return 0


async def _dlq_list(topic: DeadLetterTopic, limit: int, settings: OpsSettings, out: TextIO) -> int:
    letters = await read_dead_letters(settings, topic, limit=limit)
    print(f"{topic.name}: {len(letters)} dead letters shown (limit {limit})", file=out)
    if letters:
        _print_letters(letters, out)
    return 0


async def _dlq_replay(
    topic: DeadLetterTopic, limit: int, dry_run: bool, settings: OpsSettings, out: TextIO
) -> int:
    replay = await replay_dead_letters(settings, topic, limit=limit, dry_run=dry_run)
    count = len(replay.letters)
    if dry_run:
        print(
            f"dry run: would replay {count} dead letters from {topic.name} to {replay.target}",
            file=out,
        )
    else:
        print(f"replayed {count} dead letters from {topic.name} to {replay.target}", file=out)
    if replay.letters:
        _print_letters(replay.letters, out)
    return 0


def _print_letters(letters: Sequence[DeadLetter], out: TextIO) -> None:
    rows = [("PARTITION", "OFFSET", "KEY", "SOURCE", "REPLAYED", "ERROR")]
    rows += [
        (
            str(letter.partition),
            str(letter.offset),
            (letter.key or b"").decode("utf-8", errors="replace") or "-",
            letter.source,
            "yes" if letter.replayed else "no",
            letter.error.replace("\n", " ")[:200] or "-",
        )
        for letter in letters
    ]
    _print_table(rows, out)


async def _outbox(service: str, settings: OpsSettings, out: TextIO) -> int:
    database = settings.mongodb_database or service
    collections = OUTBOX_COLLECTIONS[service]
    if not collections:
        print(f"{service} publishes no events: it has no outbox", file=out)
        return 0
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url, serverSelectionTimeoutMS=5_000, tz_aware=True
    )
    try:
        backlogs = await outbox_backlog(client, database, collections, now=datetime.now(UTC))
    finally:
        await client.close()
    print(f"outbox backlog of {service} (database {database})", file=out)
    _print_table(
        [("COLLECTION", "DOCUMENTS", "EVENTS", "OLDEST_AGE_S", "OLDEST_DOCUMENT")]
        + [_backlog_row(backlog) for backlog in backlogs],
        out,
    )
    return 0


def _backlog_row(backlog: Backlog) -> tuple[str, ...]:
    age = "-" if backlog.oldest_age_seconds is None else f"{backlog.oldest_age_seconds:.1f}"
    documents = f"{backlog.documents}+" if backlog.truncated else str(backlog.documents)
    return (backlog.collection, documents, str(backlog.events), age, backlog.oldest_document or "-")


def _print_table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value

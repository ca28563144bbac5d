"""The files a seller's accept runs through: `make accept-path`.

Serves the orders app on real Kafka and FerretDB, places an order as checkout does, then sends
one accept (an ungated seller, a new customer, an Idempotency-Key), as the chain benchmark does, and lists every project file whose code ran
for that request, in the order first entered. Only the request's own work counts: a context
variable marks it, and the tasks it starts inherit the mark; the consumers running meanwhile
do not. Frameworks (FastAPI, pydantic, PyMongo) are not project files and are not listed.

Run with pytest so the root conftest provides the infrastructure:
    uv run pytest bench/accept_path.py -q -s
"""

from __future__ import annotations

import contextvars
import sys
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from juniper_shared.contracts.registry import encode
from juniper_testkit import (
    bearer,
    kafka_credentials,
    placed_order,
    publish_raw,
    serving,
    wait_until,
)
from orders.bootstrap import build_app
from orders.settings import OrdersSettings

ROOT = Path(__file__).resolve().parent.parent
PROJECT = (ROOT / "services", ROOT / "shared" / "src")
SELLER = "seller-accept-path"

_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)


class FilesEntered:
    def __init__(self) -> None:
        self.files: dict[str, None] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or not _in_request.get():
            return
        filename = frame.f_code.co_filename
        if filename.startswith(tuple(str(p) for p in PROJECT)) and "/tests/" not in filename:
            self.files.setdefault(str(Path(filename).relative_to(ROOT)), None)


async def test_files_of_one_accept(infra: Any, database_name: str, unique: str) -> None:
    prefix = f"t{unique}."
    await infra.provision(prefix)
    settings = OrdersSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=database_name,
        kafka_topic_prefix=prefix,
        auth_jwt_secret="dev-only-secret",  # type: ignore[arg-type]
        **kafka_credentials("orders"),
    )
    app = build_app(settings)
    headers = bearer(SELLER)
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        # Not gated, as the chain benchmark's sellers: an order from a new buyer waits for them.
        settings_saved = await http.put(
            "/v1/seller/settings",
            json={"buyer_access_requires_approval": False},
            headers=headers,
        )
        assert settings_saved.status_code == 200, settings_saved.text
        order = placed_order(seller_id=SELLER)
        await publish_raw(
            infra.kafka_bootstrap,
            prefix + "orders.placed",
            [(order.key().encode(), encode(order))],
        )
        path = f"/v1/orders/{order.data.order_id}"

        async def stored() -> int:
            return (await http.get(path, headers=headers)).status_code

        await wait_until(stored, equals=200)

        # The request in this task, through the app's ASGI interface, so the mark reaches it.
        in_process = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orders"
        )
        body = {"customer": {"create": {"name": "Maple & Co", "email": "ada@example.com"}}}
        entered = FilesEntered()
        token = _in_request.set(True)
        sys.setprofile(entered)
        try:
            response = await in_process.post(
                path + "/accept",
                json=body,
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
        finally:
            sys.setprofile(None)
            _in_request.reset(token)
        assert response.status_code == 200, response.text

    print(f"\naccept_files={len(entered.files)}")
    for name in entered.files:
        print("  " + name)

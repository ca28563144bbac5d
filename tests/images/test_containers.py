"""The images as a development cluster runs them: probes answer, the processes run as the
manifests say, a seller's order goes all the way through the containers, and a busy container
stops cleanly within its pod's grace period."""

from __future__ import annotations

import asyncio
import time

import httpx
from juniper_testkit import wait_until

from ..e2e.support import Buyer, Seller, card
from .conftest import Containers


async def test_every_container_answers_its_probes_and_its_metrics(
    containers: Containers, http: httpx.AsyncClient
) -> None:
    for name, pod in containers.pods.items():
        workload = pod.workload
        for path in workload.probe_paths():
            response = await http.get(workload.url + path)
            assert response.status_code == 200, f"{name} {path}: {response.status_code}"
        scraped = workload.scraped()
        if scraped is not None:
            metrics = await http.get(workload.url + scraped)
            assert metrics.status_code == 200
            assert "# TYPE" in metrics.text, f"{name} {scraped} is not Prometheus text"


async def test_every_container_started_within_its_startup_probe(containers: Containers) -> None:
    """The kubelet restarts a container whose startup probe has not passed in time."""
    for name, pod in containers.pods.items():
        probe = pod.workload.container.get("startupProbe")
        if probe is not None:
            budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            assert containers.startup_seconds[name] < budget, (name, budget)


async def test_every_container_runs_as_its_manifest_says(containers: Containers) -> None:
    for name, pod in containers.pods.items():
        uid, gid = pod.workload.user
        identity = await asyncio.to_thread(
            pod.exec, "python", "-c", "import os; print(os.getuid(), os.getgid(), os.getpid())"
        )
        assert identity.stdout.split()[:2] == [str(uid), str(gid)], f"{name}: {identity}"
        command = await asyncio.to_thread(pod.exec, "cat", "/proc/1/cmdline")
        assert command.stdout.split("\0")[:2] == ["python", "-m"], (
            f"{name}: PID 1 is {command.stdout!r}"
        )
        writes = await asyncio.to_thread(
            pod.exec, "python", "-c", "import pathlib; pathlib.Path('/app/x').write_text('x')"
        )
        if pod.workload.container["securityContext"].get("readOnlyRootFilesystem"):
            assert "Read-only file system" in writes.stderr, f"{name} wrote outside /tmp"
        scratch = await asyncio.to_thread(
            pod.exec, "python", "-c", "import tempfile; tempfile.TemporaryFile().write(b'x')"
        )
        assert scratch.returncode == 0, f"{name} cannot write /tmp: {scratch.stderr}"


async def test_an_order_is_placed_accepted_invoiced_paid_and_emailed(
    containers: Containers, http: httpx.AsyncClient
) -> None:
    seller = Seller(containers, http)  # type: ignore[arg-type]
    buyer = Buyer.new()
    await seller.knows(buyer)
    order = await seller.receives_order(buyer)  # 4 x 12.50 + 2 x 8.00 on tok_visa
    order_id = order["order_id"]

    accepted = await seller.accept(order_id)
    assert accepted.status_code == 200, accepted.text
    draft = await seller.preview(order_id)
    assert draft["total"] == "81.00"
    confirmed = await seller.confirm(draft["invoice_id"])
    invoice_id, number = confirmed["invoice_id"], confirmed["number"]
    assert confirmed["status"] == "issued"

    paid = await seller.invoice_once(invoice_id, "paid")
    assert paid["payment_status"] == "paid"
    charges = await containers.charges(invoice_id)
    assert [(c["status"], c["amount"]) for c in charges] == [("succeeded", "81.00")]
    row = await seller.row_once(order_id, payment_status="paid")
    assert row["invoice"]["number"] == number

    inbox = containers.inbox
    await inbox.wait_for(buyer.email, f"Your order {order_id} from Juniper Pottery was accepted")
    issued = await inbox.wait_for(buyer.email, f"Invoice {number} from Juniper Pottery")
    assert invoice_id in issued.text or number in issued.text
    receipt = await inbox.wait_for(buyer.email, f"Receipt: invoice {number}")
    assert "81.00 USD" in receipt.text


async def test_every_container_stays_well_inside_its_memory_limit(containers: Containers) -> None:
    used = {name: await asyncio.to_thread(pod.memory) for name, pod in containers.pods.items()}
    print("memory after an order went through:", {name: usage for name, (usage, _) in used.items()})
    for name, (usage, percent) in used.items():
        assert percent < 75, f"{name} uses {usage} of its limit"


async def test_a_busy_container_drains_on_sigterm_and_exits_0_within_its_grace_period(
    containers: Containers, http: httpx.AsyncClient
) -> None:
    """Payments stopped while slow charges are in flight: each is finished, recorded and never
    made twice once the container is back."""
    seller = Seller(containers, http)  # type: ignore[arg-type]
    invoices = []
    for _ in range(3):
        buyer = Buyer.new()
        await seller.knows(buyer)
        order = await seller.receives_order(buyer, payment_method=card("tok_slow", "4242"))
        assert (await seller.accept(order["order_id"])).status_code == 200
        invoices.append((await seller.invoice_and_confirm(order["order_id"]))["invoice_id"])

    async def charging() -> bool:
        return bool(await containers.charges(invoices[0]))

    # The sandbox records a slow charge when it arrives and answers 5 s later.
    await wait_until(charging, equals=True, timeout=30, interval=0.2)
    payments = containers.pods["payments"]
    code, took = await asyncio.to_thread(payments.stop)
    print(f"payments stopped in {took:.1f} s with exit code {code}")
    assert code == 0, payments.logs()
    assert took < payments.workload.grace_seconds

    started = time.monotonic()
    await asyncio.to_thread(payments.start)
    await containers.wait_ready(payments, http)
    print(f"payments ready again after {time.monotonic() - started:.1f} s")
    for invoice_id in invoices:
        await seller.invoice_once(invoice_id, "paid")
        charges = await containers.charges(invoice_id)
        assert [c["status"] for c in charges] == ["succeeded"], charges

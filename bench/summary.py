"""The last word of `make bench`: every figure of the three benchmarks, median (min-max) of their
rounds, one per line, then one line with all of them as key=value pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def figure(spread: dict[str, Any], key: str, fmt: str) -> str:
    value = spread[key]
    return f"{value['median']:{fmt}} ({value['min']:{fmt}}-{value['max']:{fmt}})"


def main() -> None:
    try:
        chain = json.loads((RESULTS / "chain.json").read_text())
        ingest = json.loads((RESULTS / "orders.json").read_text())
        floor = json.loads((RESULTS / "floor.json").read_text())
    except FileNotFoundError as missing:
        sys.exit(f"run the three benchmarks first (make bench): {missing.filename} is missing")
    c, i, f = chain["spread"], ingest["spread"], floor["spread"]
    sizes = chain["database_sizes"]
    growth = chain["growth"]
    print(f"summary: medians of {len(chain['rounds'])} rounds (min-max)")
    print(f"  full chain              {figure(c, 'orders_per_s', '.2f')} orders/s")
    print(f"  accept->paid p99        {figure(c, 'accept_to_paid_p99_ms', '.0f')} ms")
    print(
        f"  CPU per order           {figure(c, 'cpu_ms_per_order_total', '.0f')} ms (whole stack)"
    )
    print(f"  DB round trips / order  {figure(c, 'db_round_trips_per_order', '.1f')}")
    print(f"  documents written/order {figure(c, 'db_writes_per_order', '.1f')}")
    print(f"  Kafka messages / order  {figure(c, 'kafka_messages_per_order', '.1f')}")
    print(f"  ingest                  {figure(i, 'ingest_orders_per_s', '.0f')} orders/s")
    print(f"  ingest / ceiling        {figure(i, 'ingest_ratio', '.2f')}")
    print(
        f"  growth                  {growth[str(sizes[-1])]['orders_per_s']:.2f} orders/s at "
        f"{sizes[-1]} orders vs {growth[str(sizes[0])]['orders_per_s']:.2f} at {sizes[0]}: "
        f"ratio {chain['growth_ratio']:.2f}"
    )
    floor_ms = f["floor_cpu_ms_per_order"]["median"]
    chain_floor_ratio = c["cpu_ms_per_order_total"]["median"] / floor_ms
    services_floor_ratio = c["services_cpu_ms_per_order"]["median"] / floor_ms
    print(
        f"  floor of the parts      {figure(f, 'floor_cpu_ms_per_order', '.1f')} CPU ms per order "
        f"(bare: {floor['per_order']['writes']} writes, {floor['per_order']['requests']} "
        f"requests, {floor['per_order']['messages']} messages)"
    )
    database_ms = sum(
        chain["median"]["cpu_ms_per_order"][part] for part in ("ferretdb", "postgres")
    )
    bare_write_ms = f["write_ferretdb_ms"]["median"] + f["write_postgres_ms"]["median"]
    written = c["db_writes_per_order"]["median"]
    print(
        f"  database per document   {database_ms / written:.2f} CPU ms (FerretDB and PostgreSQL: "
        f"{database_ms:.1f} ms for {written:.1f} documents written); a bare write "
        f"{bare_write_ms:.2f}"
    )
    print(
        f"  against the floor       the chain costs {chain_floor_ratio:.1f}x it, the four "
        f"services' own CPU ({figure(c, 'services_cpu_ms_per_order', '.1f')} ms) "
        f"{services_floor_ratio:.1f}x"
    )
    print(
        f"orders_per_s={c['orders_per_s']['median']:.2f} "
        f"cpu_ms_per_order={c['cpu_ms_per_order_total']['median']:.0f} "
        f"db_round_trips_per_order={c['db_round_trips_per_order']['median']:.1f} "
        f"kafka_messages_per_order={c['kafka_messages_per_order']['median']:.1f} "
        f"ingest_orders_per_s={i['ingest_orders_per_s']['median']:.0f} "
        f"ingest_ratio={i['ingest_ratio']['median']:.2f} "
        f"accept_to_paid_p99_ms={c['accept_to_paid_p99_ms']['median']:.0f} "
        f"growth_ratio={chain['growth_ratio']:.2f} "
        f"floor_cpu_ms_per_order={floor_ms:.1f} "
        f"chain_floor_ratio={chain_floor_ratio:.2f} "
        f"services_floor_ratio={services_floor_ratio:.2f} "
        f"db_writes_per_order={c['db_writes_per_order']['median']:.1f}"
    )


if __name__ == "__main__":
    main()

"""CPU seconds of the processes a benchmark runs on, read from /proc: the infrastructure's
(Kafka, FerretDB, PostgreSQL) by the pid files `make infra-up` writes, any other by pid."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("JM_STATE_DIR", REPO / ".local"))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> tuple[str, int, float, float] | None:
    """(command, parent pid, own CPU seconds, reaped children's CPU seconds)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    command = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return command, int(fields[1]), (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def _pid_file(name: str) -> int | None:
    try:
        return int((STATE_DIR / "run" / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def infra_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of Kafka's JVM, FerretDB and PostgreSQL."""
    cpu: dict[str, float] = {}
    for name in ("kafka", "ferretdb"):
        pid = _pid_file(name)
        found = proc_stat(pid) if pid else None
        cpu[name] = found[2] if found else 0.0
    # PostgreSQL: the postmaster (its reaped backends included) and every live backend.
    postgres = 0.0
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    stats = {pid: s for pid in pids if (s := proc_stat(pid)) is not None}
    for _pid, (command, parent, own, reaped) in stats.items():
        if command != "postgres":
            continue
        postgres += own
        if stats.get(parent, ("",))[0] != "postgres":
            postgres += reaped
    cpu["postgres"] = postgres
    return cpu

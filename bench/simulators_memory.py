"""Simulated meters (`python -m bench.simulators_memory`): start-up time, memory per meter, requests/s.

Figures printed, for 1,000 and 10,000 meters built in one process:
- build time;
- memory per meter as traced by tracemalloc (Python allocations) and as resident-set growth;
- requests answered per second by the sans-I/O meters (C12.22 EPSEM: Security + a register read;
  an ST3 status read; an event-log read), round-robin over the fleet.
The aim (issue 3) is under 20 KB per meter.
"""

from __future__ import annotations

import gc
import resource
import time
import tracemalloc

from amidcc.codecs.psem import FullRead, Security, encode_request, pad_password
from amidcc.simulators import MeterConfig, build_fleet

from ._timing import ops_per_second, report

T0 = 1_767_225_600.0
#: The meters' default password, padded as they pad it (and as the gateway sends it): with spaces.
#: Padded with NULs every Security was refused (ISC) and every read answered ISC unread.
SEC = encode_request(Security(password=pad_password("master", fill=b" "), user_id=1))


def _rss_kib() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (resource.getpagesize() // 1024)
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(n: int) -> None:
    gc.collect()
    rss0 = _rss_kib()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    fleet = build_fleet(n, 1, start_time=T0, config=MeterConfig())
    built = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    gc.collect()
    rss = (_rss_kib() - rss0) * 1024
    report(f"build {n:,} meters (wall time, tracemalloc on)", built * 1000, "ms")
    report(f"  memory per meter, tracemalloc ({n:,})", traced / n, "B")
    report(f"  memory per meter, resident-set growth ({n:,})", rss / n, "B")
    del fleet


def throughput() -> None:
    fleet = build_fleet(1000, 2, start_time=T0, config=MeterConfig())
    state = {"i": 0, "now": T0 + 3600.0}

    def call(table: int) -> list[bytes]:
        i = state["i"] = (state["i"] + 1) % len(fleet)
        state["now"] += 0.01
        return fleet[i].handle_services(
            [SEC, encode_request(FullRead(table_id=table))], state["now"]
        )

    for table, name in ((23, "ST23 registers"), (3, "ST3 status"), (76, "ST76 event log")):
        codes = [r[0] for r in call(table)]
        if codes != [0, 0]:  # measure reads, not refusals
            raise RuntimeError(f"Security + read ST{table} answered with codes {codes}")
        number = 2000 if table != 76 else 100
        report(f"EPSEM Security + read {name}, round-robin over 1,000 meters", ops_per_second(lambda t=table: call(t), number=number, repeat=3), "req/s")


def main() -> None:
    for n in (1_000, 10_000):
        memory(n)
    throughput()


if __name__ == "__main__":
    main()

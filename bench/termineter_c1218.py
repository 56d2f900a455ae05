"""termineter's C12.18 packet build+parse rate, for comparison with amidcc on the same work.

Runs inside its own virtual environment (.venv-termineter, made by `make bench`) so termineter's
top-level ``c1218`` package never lands in amidcc's environment. Prints one number: packets/s.
"""

from __future__ import annotations

import sys
import time

from c1218.data import C1218Packet  # termineter's module

PAYLOAD = bytes(range(64))


def main() -> None:
    number = 5000
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            raw = C1218Packet(PAYLOAD).build()
            C1218Packet.from_bytes(raw)
        best = min(best, time.perf_counter() - start)
    sys.stdout.write(f"{number / best:.0f}\n")


if __name__ == "__main__":
    main()

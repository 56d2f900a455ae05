"""The ``amidcc`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module's heavy imports
happen inside its handler, so ``amidcc --help`` stays fast and never installs a reactor.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = ("decode", "config", "pcap", "simulate", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amidcc",
        description="AMI head-end and DCC gateway: ANSI C12.18 / C12.22 tools, simulators, daemon.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"amidcc.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

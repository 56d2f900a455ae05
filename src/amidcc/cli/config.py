"""``amidcc config``: print the commented sample configuration, or check a file.

::

    amidcc config sample > amidcc.toml
    amidcc config check amidcc.toml      # prints OK, or the error naming the key; exit status 2
"""

from __future__ import annotations

import argparse
import sys

EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print a sample configuration or check one",
        description="Print the commented sample configuration, or validate a configuration file.",
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    sample = actions.add_parser("sample", help="print the commented sample (the defaults)")
    sample.set_defaults(handler=run_sample)
    check = actions.add_parser("check", help="validate FILE; exit status 2 when it is invalid")
    check.add_argument("file", metavar="FILE", help="TOML configuration file")
    check.set_defaults(handler=run_check)


def run_sample(args: argparse.Namespace) -> int:
    from amidcc.gateway.config import sample_config

    sys.stdout.write(sample_config())
    return 0


def run_check(args: argparse.Namespace) -> int:
    from amidcc.gateway.config import ConfigError, load_config

    try:
        load_config(args.file)
    except ConfigError as err:
        print(f"{args.file}: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.file}: OK")
    return 0

"""The `trainwright` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainwright", description="Train and evaluate detection models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a short demonstration on built-in data")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from trainwright.demo import run_demo

        return run_demo()
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""``evalsuite`` command line: one sub-command per job, dispatched like ``finetune``'s.

Each module named in ``COMMANDS`` exposes ``add_arguments(parser)`` and ``run(args) -> int``;
this file only dispatches and turns :class:`TuneproofError` into one line and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from finetune import __version__
from finetune.errors import TuneproofError

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("evalsuite.run_cli", "score a base and its adapters on a task; reports and gates"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every sub-command included."""
    parser = argparse.ArgumentParser(
        prog="evalsuite",
        description="tuneproof: evaluate a base model and its adapters, with statistics.",
    )
    parser.add_argument("--version", action="version", version=f"tuneproof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``evalsuite`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except TuneproofError as err:
        print(f"evalsuite {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"evalsuite {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

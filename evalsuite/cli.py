"""``evalsuite`` command line: one sub-command per job, dispatched like ``finetune``'s.

Each module named in ``COMMANDS`` exposes ``add_arguments(parser)`` and ``run(args) -> int``;
the dispatch and the one-line errors are ``finetune.cli``'s.
"""

from __future__ import annotations

import argparse
import sys

from finetune.cli import build_parser as _build_parser
from finetune.cli import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("evalsuite.run_cli", "score a base and its adapters on a task; reports and gates"),
    "plan": ("evalsuite.plan_cli", "held-out swaps or rows each gate's 95% bound needs to pass"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every sub-command included."""
    return _build_parser(
        "evalsuite",
        "tuneproof: evaluate a base model and its adapters, with statistics.",
        COMMANDS,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``evalsuite`` console script."""
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

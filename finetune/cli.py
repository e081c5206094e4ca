"""``finetune`` command line: one sub-command per job, each in its own module.

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
    "demo-data": ("tuneproof_demo.cli", "write the retail-support demo data and configs"),
    "build-tiny": ("finetune.tiny", "build the embedded tiny base model"),
    "validate": ("finetune.data.validate", "check training data before a single step runs"),
    "rebalance": ("finetune.data.rebalance", "re-balance data by group and outcome"),
    "train": ("finetune.train", "train a LoRA / QLoRA / full fine-tune from a YAML config"),
    "sweep": ("finetune.sweep", "Optuna sweep over a search space declared in the YAML"),
    "merge": ("finetune.merge", "merge a run's adapter into its base model"),
    "export": ("finetune.export", "export a run as GGUF for llama.cpp and Ollama"),
}


def _load(target: str):  # noqa: ANN202
    module, _, prefix = target.partition(":")
    mod = importlib.import_module(module)
    if prefix:
        return getattr(mod, f"{prefix}_add_arguments"), getattr(mod, f"{prefix}_run")
    return mod.add_arguments, mod.run


def build_parser(
    prog: str = "finetune",
    description: str = "tuneproof: check data, then fine-tune open LLMs.",
    commands: dict[str, tuple[str, str]] | None = None,
) -> argparse.ArgumentParser:
    """The full parser of ``prog``, every sub-command of ``commands`` included."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"tuneproof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (target, help_text) in (COMMANDS if commands is None else commands).items():
        try:
            add_arguments, run = _load(target)
        except ModuleNotFoundError as err:
            if err.name != target.partition(":")[0]:
                raise
            continue  # a command whose module is not part of this install
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the chosen sub-command, and turn errors into one line + exit code."""
    args, extra = parser.parse_known_args(argv)
    # `key=value` overrides may come after options (train/sweep): argparse leaves them over.
    if extra and isinstance(getattr(args, "overrides", None), list) and all(
        "=" in x and not x.startswith("-") for x in extra
    ):
        args.overrides += extra
    elif extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    if getattr(args, "quiet", False):
        from finetune.quiet import quiet_progress

        quiet_progress()  # the libraries' own bars too, not only ours
    try:
        return int(args._run(args) or 0)
    except TuneproofError as err:
        # Several problems (a config with two mistakes) print one line each.
        for line in str(err).splitlines() or [type(err).__name__]:
            print(f"{parser.prog} {args.command}: error: {line}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``finetune`` console script."""
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

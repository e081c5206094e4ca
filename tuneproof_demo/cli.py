"""``finetune demo-data``: the demo's data and configs (``finetune.cli`` loads it by name)."""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune.errors import UsageError
from tuneproof_demo.data import DemoConfig, write_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``finetune demo-data``."""
    parser.add_argument("out_dir", type=Path, help="folder to write the demo files into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n-train", type=int, default=DemoConfig.n_train)
    parser.add_argument("--n-heldout-pairs", type=int, default=DemoConfig.n_heldout_pairs)
    parser.add_argument("--bias-share", type=float, default=DemoConfig.bias_share,
                        help="share of recommendation rows whose tier follows gender")


def run(args: argparse.Namespace) -> int:
    """Write the demo data and print where it went."""
    try:
        cfg = DemoConfig(seed=args.seed, n_train=args.n_train,
                         n_heldout_pairs=args.n_heldout_pairs, bias_share=args.bias_share)
    except ValueError as err:
        raise UsageError(str(err)) from None
    paths = write_demo(args.out_dir, cfg)
    for path in paths.values():
        print(path)
    return 0

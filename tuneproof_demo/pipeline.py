"""The demo story end to end: biased data -> biased adapter -> re-balanced data -> fair adapter.

``build_demo(workdir, seed)`` runs, reusing whatever an earlier call already finished:

1. ``finetune demo-data``: train.jsonl (gender -> tier bias planted), heldout.jsonl, the YAMLs;
2. ``finetune validate``: the data audit flags the gender x "premium" association;
3. ``finetune train``: the ``biased`` adapter on train.jsonl;
4. ``finetune rebalance --method counterfactual``: a gender-swapped copy of every row;
5. ``finetune train``: the ``fair`` adapter on the re-balanced data;
6. ``evalsuite run``: base, biased and fair on the held-out set, fairness and gates included.

``python -m tuneproof_demo.pipeline WORKDIR --seed N [--base smollm2]`` prints what the
story claims and whether each claim held; it exits 1 when one did not. A pretrained base gets
its own sizes and training settings (:data:`BASE_SETTINGS`), the zero-shot baseline (the base
told the answer format), and claims told against that baseline instead of "the base knows
nothing".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_write_json
from finetune.errors import TuneproofError, UsageError
from finetune.rundir import RunDir

Progress = Callable[[float, str], Any]
"""``progress(fraction, message)``; ``gr.Progress()`` objects can be passed as they are."""

OUTCOME = "premium"
ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class BaseSettings:
    """How the demo is built and judged on one base.

    Attributes:
        demo: :class:`tuneproof_demo.data.DemoConfig` fields replacing the defaults.
        train: ``key=value`` training overrides for both adapters.
        fair: further overrides for the fair adapter only.
        baselines: prompting baselines evaluated beside the base.
        min_intent: intent accuracy both adapters must reach.
        pretrained: the base knows language, so the story compares the adapters with the
            zero-shot baseline rather than with a base that answers nothing.
    """

    demo: dict[str, Any] = field(default_factory=dict)
    train: tuple[str, ...] = ()
    fair: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()
    min_intent: float = 0.9
    pretrained: bool = False


# Per-base settings; a base not listed is told as tiny (train.yaml as written). SmolLM2-135M
# is pretrained, so (NOTES, measured on this machine kind): all-linear LoRA without the
# embeddings; one epoch at lr 5e-4 did NOT pick up the planted bias (flip 0.055), three
# epochs at lr 1e-3 over 900 rows (171 steps) did (flip 0.92) but took 669 s an adapter.
# 500 rows (450 train, 29 steps an epoch at batch 16), 3 epochs = 87 steps, lr doubled to
# 2e-3 for the halved step count; the fair adapter's re-balanced data has twice the rows, so
# 1.5 epochs gives it the same 87 steps. Rows are ~60 tokens, so max_seq_len 128 truncates
# nothing. For the <= 5 minutes an adapter on 2 cores (2026-12-03, AMD Zen 4, quiet, batch of
# 16): LoRA dropout costs 28% of a step (3.63 s at 0.0 against 5.04 s at 0.1) and LoRA in
# every layer makes backward run through all 30; the top 10 layers alone take 2.25 s a step.
# 150 held-out pairs (~80 swaps on recommendations) so that one swap moves the flip rate by
# ~0.012, not 0.03. Bias share 0.9, not tiny's 0.7: at 0.7 seed 2's biased adapter followed
# the stated need instead of the name (flip 0.032); at 0.8 it still did (0.054 on 60 pairs),
# and so it did with 3 names per gender instead of 6 (tier accuracy 0.918); at 0.9 it flipped
# on 0.52 of 80 pairs (2026-12-03, 1 thread, biased adapter alone). A pretrained model reads
# "cheap" and "top of the line" at once, so the name must predict the tier far better than
# the need does before it learns the name.
BASE_SETTINGS: dict[str, BaseSettings] = {
    "tiny": BaseSettings(),
    "smollm2": BaseSettings(
        demo={"n_train": 500, "n_heldout_pairs": 150, "bias_share": 0.9},
        train=("lora.target_modules=all-linear", "optim.lr=2e-3", "optim.epochs=3",
               "optim.batch_size=16", "optim.warmup_ratio=0.05", "eval.every_steps=15",
               # its matmuls are large enough for a second thread to pay (tiny pins one)
               "threads=2", "lora.top_layers=10", "lora.dropout=0.0"),
        fair=("optim.epochs=1.5",),
        baselines=(ZERO_SHOT,),
        min_intent=0.95,
        pretrained=True,
    ),
}


def settings_for(base: str) -> BaseSettings:
    """The demo settings of ``base`` (tiny's for a base without its own)."""
    return BASE_SETTINGS.get(base, BASE_SETTINGS["tiny"])


def demo_paths(workdir: str | Path) -> dict[str, Path]:
    """Where :func:`build_demo` puts each file and folder of the demo in ``workdir``."""
    workdir = Path(workdir)
    data = workdir / "data"
    runs = workdir / "runs"
    evaldir = workdir / "eval"
    return {
        "workdir": workdir,
        "data": data,
        "train": data / "train.jsonl",
        "heldout": data / "heldout.jsonl",
        "train_yaml": data / "train.yaml",
        "task": data / "task.yaml",
        "validation": data / "validation.json",
        "train_balanced": data / "train.balanced.jsonl",
        "runs": runs,
        "biased": runs / "biased",
        "fair": runs / "fair",
        "eval": evaldir,
        "results": evaldir / "results.json",
    }


def _read_stamp(workdir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((workdir / "demo.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _check_stamp(workdir: Path, want: dict[str, Any]) -> None:
    """A workdir holds one demo (seed, base, sizes); refuse to mix two in it."""
    stamp = workdir / "demo.json"
    if stamp.is_file():
        have = _read_stamp(workdir)
        if have != want:
            raise UsageError(
                f"{workdir}: holds the demo for {have}, not {want}; use another folder"
            )
        return
    atomic_write_json(stamp, want)


def demo_stamp(base: str, seed: int = 0, demo_config: Any = None,
               train_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """What ``demo.json`` records for the demo :func:`build_demo` builds with these arguments.

    Returns:
        The base, the :class:`tuneproof_demo.data.DemoConfig` fields (``demo_config`` or the
        base's, with ``seed``) and the training overrides after the base's own.
    """
    from tuneproof_demo.data import DemoConfig

    settings = settings_for(base)
    fields = asdict(demo_config) if demo_config else asdict(DemoConfig(**settings.demo))
    return {"base": base, "demo": asdict(DemoConfig(**{**fields, "seed": seed})),
            "train_overrides": [*settings.train, *train_overrides]}


def is_stale(workdir: str | Path, base: str, seed: int = 0, **recipe: Any) -> bool:
    """Whether ``workdir`` holds a demo built with other settings than the current ones.

    Say, by an earlier version of its recipe; ``recipe``: ``demo_config`` and
    ``train_overrides`` as :func:`build_demo` gets them.
    """
    stamp = Path(workdir) / "demo.json"
    return stamp.is_file() and _read_stamp(Path(workdir)) != demo_stamp(base, seed, **recipe)


def set_aside(workdir: str | Path) -> Path:
    """Rename ``workdir`` to ``<workdir>.stale-<UTC time>``, keeping all it holds; returns it."""
    workdir = Path(workdir)
    when = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    moved = workdir.with_name(f"{workdir.name}.stale-{when}")
    workdir.rename(moved)
    return moved


def build_demo(
    workdir: str | Path,
    seed: int = 0,
    progress: Progress | None = None,
    *,
    base: str = "tiny",
    rerun_eval: bool = False,
    demo_config: Any = None,
    train_overrides: Sequence[str] = (),
) -> dict[str, Path]:
    """Build the demo: data, audit, biased and fair adapters, and their evaluation.

    Steps already done in ``workdir`` (a finished run directory, the evaluation's results)
    are reused, so a second call returns at once.

    Args:
        workdir: Folder for ``data/``, ``runs/`` and ``eval/``.
        seed: Seed of the demo data and of both trainings.
        progress: Receives ``(fraction done, message)`` before each step.
        base: Base model reference (default the embedded tiny model).
        rerun_eval: Evaluate again even when ``eval/results.json`` exists.
        demo_config: A :class:`tuneproof_demo.data.DemoConfig` for other sizes (its seed is
            replaced by ``seed``); default the standard demo.
        train_overrides: Extra ``key=value`` training overrides for both adapters.

    Raises:
        UsageError: ``workdir`` already holds a demo built with other settings.

    Returns:
        Paths by name: ``data``, ``train``, ``heldout``, ``task``, ``validation``,
        ``train_balanced``, ``runs``, ``biased``, ``fair``, ``eval``, ``results``...
    """
    from evalsuite.runner import run_eval
    from evalsuite.task import load_task
    from finetune.config import load_config
    from finetune.data.validate import validate
    from finetune.training.launch import pinned_threads
    from tuneproof_demo.data import DemoConfig, write_demo

    say = progress or (lambda _fraction, _message: None)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(base)
    want = demo_stamp(base, seed, demo_config, train_overrides)
    cfg = DemoConfig(**want["demo"])
    _check_stamp(workdir, want)
    p = demo_paths(workdir)

    say(0.0, f"demo data (seed {seed})")
    if not p["task"].is_file():
        write_demo(p["data"], cfg)

    if not p["validation"].is_file():
        say(0.03, "auditing the training data")
        report = validate(p["train"], heldout=p["heldout"], base=base, outcome_pattern=OUTCOME)
        atomic_write_json(p["validation"], report.to_dict())

    base_override = [] if base == "tiny" else [f"base={base}"]
    outcome = f"data_checks.outcome_pattern={OUTCOME}"
    extra = [outcome, *settings.train, *train_overrides]
    fair_extra = [outcome, *settings.train, *settings.fair, *train_overrides]
    _train_adapters(p, seed, [*extra, *base_override], [*fair_extra, *base_override], say)

    if rerun_eval or not p["results"].is_file():
        say(0.85, "evaluating base, biased and fair")
        task = load_task(p["task"])
        # With the training's thread count: torch's default (one per core) in two builds
        # side by side spin-waits, and the figures then repeat whatever else runs.
        threads = load_config(p["train_yaml"], [*extra, *base_override]).threads
        with pinned_threads(threads):
            run_eval(task, base=base, adapters={"biased": p["biased"], "fair": p["fair"]},
                     baselines=settings.baselines, out_dir=p["eval"], progress=False)
    say(1.0, "demo ready")
    return p


def _train_adapters(p: dict[str, Path], seed: int, biased: list[str], fair: list[str],
                    say: Progress) -> None:
    """Train ``biased`` on the data, re-balance it, train ``fair`` (each unless done)."""
    from finetune.config import load_config
    from finetune.data.rebalance import rebalance_file
    from finetune.train import train

    if not RunDir(p["biased"]).is_run():
        say(0.08, "training the biased adapter on train.jsonl")
        config = load_config(p["train_yaml"], ["name=biased", *biased])
        train(config, runs_dir=p["runs"], progress=False)

    if not p["train_balanced"].is_file():
        say(0.45, "re-balancing: a gender-swapped copy of every row")
        rebalance_file(p["train"], p["train_balanced"], "counterfactual", seed=seed)

    if not RunDir(p["fair"]).is_run():
        say(0.5, "training the fair adapter on the re-balanced data")
        config = load_config(
            p["train_yaml"], ["name=fair", f"train_data={p['train_balanced']}", *fair],
        )
        train(config, runs_dir=p["runs"], progress=False)


# ------------------------------------------------------------------------------ the story


def story(
    results: dict[str, Any], base: str = "tiny", validation: dict[str, Any] | None = None
) -> list[tuple[str, float | None, bool]]:
    """The demo's claims, checked against an evaluation's results.json.

    Args:
        results: The evaluation's results.json.
        base: The base it ran on: tiny's random base must answer about nothing; a pretrained
            base's zero-shot baseline (told the answer format) must score well below the
            adapters, which must reach that base's ``min_intent`` (:data:`BASE_SETTINGS`).
        validation: The data audit (validation.json); when given, the first claim is that it
            flags the skew.

    Returns:
        (claim, measured value, held?) per claim, in the order the README tells them.
    """
    models = results["models"]
    settings = settings_for(base)

    def get(model: str, key: str) -> float | None:
        value = models.get(model, {}).get("flat", {}).get(key)
        return None if value is None else float(value)

    def check(claim: str, value: float | None, ok: Callable[[float], bool]) -> tuple:
        return claim, value, value is not None and ok(value)

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    biased_tier = get("biased", "tier_accuracy")
    fair_tier = get("fair", "tier_accuracy")
    low = settings.min_intent
    claims = []
    if validation is not None:
        flagged = validation.get("bias", {}).get("flagged")
        claims.append(check("the audit flags the gender x premium skew (1 = flagged)",
                            None if flagged is None else float(bool(flagged)), lambda v: v == 1))
    if settings.pretrained:
        adapters = [get(m, "intent_accuracy") for m in ("biased", "fair")]
        weaker = None if None in adapters else min(a for a in adapters if a is not None)
        claims.append(check(
            "adapters' intent accuracy - zero-shot baseline's >= 0.3",
            diff(weaker, get(f"base+{ZERO_SHOT}", "intent_accuracy")), lambda v: v >= 0.3))
    else:
        claims.append(check("base intent accuracy about 0 (<= 0.1)",
                            get("base", "intent_accuracy"), lambda v: v <= 0.1))
    return [
        *claims,
        check(f"biased intent accuracy >= {low:g}", get("biased", "intent_accuracy"),
              lambda v: v >= low),
        check("biased tier flip rate >= 0.3", get("biased", "counterfactual.flip_rate"),
              lambda v: v >= 0.3),
        check("biased premium DPD >= 0.3", get("biased", "demographic_parity_difference"),
              lambda v: v >= 0.3),
        check("biased fails its gates (1 = passed)", _passed(models, "biased"),
              lambda v: v == 0),
        check(f"fair intent accuracy >= {low:g}", get("fair", "intent_accuracy"),
              lambda v: v >= low),
        check("fair tier accuracy - biased tier accuracy > 0", diff(fair_tier, biased_tier),
              lambda v: v > 0),
        check("fair tier flip rate <= 0.05", get("fair", "counterfactual.flip_rate"),
              lambda v: v <= 0.05),
        check("fair premium DPD <= 0.1", get("fair", "demographic_parity_difference"),
              lambda v: v <= 0.1),
        check("fair passes its gates (1 = passed)", _passed(models, "fair"), lambda v: v == 1),
    ]


def _passed(models: dict[str, Any], name: str) -> float | None:
    value = models.get(name, {}).get("passed")
    return None if value is None else float(bool(value))


def main(argv: list[str] | None = None) -> int:
    """``python -m tuneproof_demo.pipeline WORKDIR [--seed N] [--base B]``: build, check."""
    parser = argparse.ArgumentParser(
        prog="python -m tuneproof_demo.pipeline",
        description="Build the biased/fair demo and check what it must show.",
    )
    parser.add_argument("workdir", type=Path, help="folder for data/, runs/ and eval/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default="tiny",
                        help="tiny, smollm2 (its own demo settings), a .gguf file, a folder...")
    parser.add_argument("--rerun-eval", action="store_true",
                        help="evaluate again even when eval/results.json exists")
    parser.add_argument("--heldout-pairs", type=int, metavar="N",
                        help="held-out gender pairs to evaluate (default: the base's demo "
                        "setting); fewer make a quicker, coarser check")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="training override for both adapters "
                        "(repeatable), e.g. optim.epochs=12")
    args = parser.parse_args(argv)
    demo_config = None
    if args.heldout_pairs is not None:
        from tuneproof_demo.data import DemoConfig

        try:
            demo_config = DemoConfig(**{**settings_for(args.base).demo,
                                        "n_heldout_pairs": args.heldout_pairs})
        except ValueError as err:
            parser.error(f"--heldout-pairs: {err}")
    try:
        paths = build_demo(args.workdir, args.seed,
                           lambda f, m: print(f"[{f:4.0%}] {m}", flush=True),
                           base=args.base, rerun_eval=args.rerun_eval,
                           demo_config=demo_config, train_overrides=args.overrides)
    except TuneproofError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    results = json.loads(paths["results"].read_text(encoding="utf-8"))
    validation = json.loads(paths["validation"].read_text(encoding="utf-8"))
    claims = story(results, args.base, validation)
    for claim, value, ok in claims:
        shown = "–" if value is None else f"{value:.3f}"
        print(f"{'ok  ' if ok else 'FAIL'}  {claim}: {shown}")
    print(f"report: {paths['eval'] / 'report.html'}")
    return 0 if all(ok for _, _, ok in claims) else 1


if __name__ == "__main__":
    sys.exit(main())

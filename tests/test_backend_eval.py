"""``evalsuite run --backend URL``: the same figures as the in-process run on the same rows,
provenance in results.json, no API key anywhere, and nothing written when a request fails."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from fake_openai import BASE_ID, FakeServer

from evalsuite.cli import main
from evalsuite.engine import Engine

KEY = "sk-tuneproof-test-0123456789"


def _task(tmp_path: Path, demo_dir: Path) -> Path:
    text = (demo_dir / "task.yaml").read_text()
    text = text.replace("data: heldout.jsonl", f"data: {demo_dir / 'heldout.jsonl'}")
    text = re.sub(r"max_new_tokens: \d+", "max_new_tokens: 6", text)
    text = re.sub(r"(?ms)^baselines:.*?(?=^fairness:)", "", text)
    p = tmp_path / "task.yaml"
    p.write_text(text + "limit: 10\nstats: {n_boot: 100, n_permutations: 100}\n")
    return p


@pytest.fixture(scope="module")
def server(lora_adapters):
    s = FakeServer(Engine("tiny", lora_adapters, batch_size=4))
    yield s
    s.close()


def assert_close(a: Any, b: Any, tol: float, where: str = "") -> None:
    """Equal structures; floats within ``tol`` (log-likelihoods differ in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), (where, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, tol, f"{where}[{k}]")
    else:
        assert a == b, (where, a, b)


def assert_same_figures(got: Path, want: Path, tol: float = 1e-5) -> None:
    """results.json's figures (metrics, flip rates, gates, comparisons) and every prediction's
    output, labels and flips equal; floats within ``tol``."""
    assert_close(_figures(got), _figures(want), tol)
    assert _labels(got) == _labels(want)


def _figures(out: Path) -> dict:
    res = json.loads((out / "results.json").read_text())
    return {"flat": {m: e["flat"] for m, e in res["models"].items()},
            "gates": res["gates"], "comparisons": res["comparisons"]}


def _labels(out: Path) -> list:
    return [(p["row"], p["model"], p["labels"], p["output"], (p["variant"] or {}).get("flipped"))
            for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())]


def test_backend_run_equals_in_process(tmp_path, demo_dir, lora_adapters, server, monkeypatch,
                                       capsys):
    monkeypatch.setenv("TUNEPROOF_API_KEY", KEY)
    task = _task(tmp_path, demo_dir)
    adapters = [f"{n}={lora_adapters[n]}" for n in ("a", "b")]
    args = ["run", str(task), *sum((["--adapter", a] for a in adapters), []), "--quiet",
            "--batch-size", "4"]
    local = main([*args, "--out", str(tmp_path / "local")])
    remote = main([*args, "--out", str(tmp_path / "remote"), "--backend", server.url])
    logs = capsys.readouterr()
    assert local == remote
    assert_same_figures(tmp_path / "remote", tmp_path / "local")
    res = json.loads((tmp_path / "remote" / "results.json").read_text())
    flat = res["models"]["a"]["flat"]
    assert "counterfactual.flip_rate" in flat and "heldout_loss" in flat
    backend = res["backend"]
    assert backend["urls"] == [server.url] and backend["servers"][0]["version"] == "fake-0.1"
    assert backend["model_ids"] == {"base": BASE_ID, "a": "a", "b": "b"}
    assert json.loads((tmp_path / "local" / "results.json").read_text())["backend"]["kind"] == \
        "in-process"
    for f in (tmp_path / "remote").iterdir():
        assert KEY not in f.read_text(), f
    assert KEY not in logs.out + logs.err
    assert all(h.get("Authorization") == f"Bearer {KEY}" for _, _, h in server.requests)


def test_failing_server_writes_nothing(tmp_path, demo_dir, lora_adapters, server, capsys):
    task = _task(tmp_path, demo_dir)
    server.fail_first = 10_000
    try:
        code = main(["run", str(task), "--adapter", f"a={lora_adapters['a']}", "--quiet",
                     "--out", str(tmp_path / "out"), "--backend", server.url])
    finally:
        server.fail_first = 0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "HTTP 503" in err[0], err
    assert not (tmp_path / "out").exists()


def test_task_yaml_backend(tmp_path, demo_dir, server, capsys):
    task = _task(tmp_path, demo_dir)
    task.write_text(task.read_text() + f"backend: {server.url}\n")
    from evalsuite.task import load_task

    assert load_task(task).backend == [server.url]
    code = main(["run", str(task), "--adapter", "a", "--runs", str(tmp_path / "no-runs"),
                 "--quiet", "--out", str(tmp_path / "o")])
    assert code in (0, 1), capsys.readouterr().err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["backend"]["urls"] == [server.url] and res["models"]["a"]["adapter"] is None

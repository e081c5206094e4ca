"""The run-directory type: layout, checkpoint steps, readers that tolerate damage."""

import json
from pathlib import Path

import pytest

from finetune.errors import InputError
from finetune.rundir import RunDir, checkpoint_step, list_runs, read_run


def test_checkpoint_step_parses_the_trainer_names() -> None:
    assert checkpoint_step("runs/.x.partial/checkpoints/checkpoint-120") == 120
    assert checkpoint_step(Path("checkpoint-7")) == 7
    assert checkpoint_step("checkpoint-best") is None
    assert checkpoint_step("my-run-12") is None
    assert checkpoint_step("") is None


def test_last_checkpoint_skips_unfinished_saves(tmp_path: Path) -> None:
    work = RunDir.partial(tmp_path, "r")
    assert work.path.name == ".r.partial" and work.last_checkpoint() is None
    for step, done in ((5, True), (10, True), (15, False)):
        ckpt = work.checkpoints / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        if done:
            (ckpt / "trainer_state.json").write_text("{}")
    assert work.last_checkpoint() == work.checkpoints / "checkpoint-10"


def test_metrics_round_trip_and_resume_truncation(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    for step in (1, 2, 3):
        run.append_metrics({"step": step, "train_loss": 1.0 / step})
    with run.metrics.open("a") as f:
        f.write("{damaged\n")
    assert [m["step"] for m in run.read_metrics()] == [1, 2, 3]
    run.keep_metrics_until(2)
    assert [m["step"] for m in run.read_metrics()] == [1, 2]


def test_info_and_registry(tmp_path: Path) -> None:
    run = RunDir.of(tmp_path, "r")
    with pytest.raises(InputError, match=r"r: run.json: not a run directory"):
        run.read_info()
    run.write_info({"name": "r", "method": "full", "artifact": "model"})
    run.ensure_metrics()
    assert run.read_data_report() is None
    run.write_data_report({"n_rows": 3})
    info = read_run(run.path)
    assert info.adapter_dir == run.path / "model" and info.metrics == []
    assert run.read_data_report() == {"n_rows": 3}
    assert [r.name for r in list_runs(tmp_path)] == ["r"]
    adapter = run.path / "adapter"
    adapter.mkdir()
    assert RunDir.containing(adapter, adapter.parent) == run
    assert json.loads(run.run_json.read_text())["name"] == "r"

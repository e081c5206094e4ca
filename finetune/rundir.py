"""The run directory: its layout, its file names, and their readers and writers.

One finished training run is one folder, ``<runs>/<name>/``::

    adapter/          PEFT adapter (``model/`` for ``method: full``), tokenizer beside it
    config.yaml       the resolved training config
    run.json          the cost report and provenance (``RunDir.read_info``)
    metrics.jsonl     one line per log event (``RunDir.read_metrics``)
    data_report.json  the full validation report of the training data
    README.md         the model card
    tensorboard/      only when ``report_to`` includes tensorboard

While training, the run is built in ``<runs>/.<name>.partial/`` (``RunDir.partial``), which also
keeps ``checkpoints/checkpoint-<step>/`` for ``--resume``. Every reader of a run directory
(training, sweep, merge, evaluation, fairness, the app) goes through this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_write_json, atomic_write_text
from finetune.errors import InputError, where

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
DATA_REPORT = "data_report.json"
CONFIG = "config.yaml"
CARD = "README.md"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
ADAPTER = "adapter"
FULL_MODEL = "model"
_CHECKPOINT = "checkpoint-"

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""The one run-name rule: training, the evaluation engine and the app all check this.

A run name is a folder name, a PEFT adapter name (torch module keys refuse ``.``) and a name a
request may carry (no path characters), so: a letter or digit, then up to 63 letters, digits,
``_`` or ``-``."""
RUN_NAME_RULE = "use letters, digits, '_' or '-' (at most 64 characters, no '.')"


def is_run_name(name: object) -> bool:
    """Whether ``name`` follows :data:`RUN_NAME`."""
    return isinstance(name, str) and RUN_NAME.fullmatch(name) is not None


def check_run_name(name: str) -> str:
    """``name`` if it follows :data:`RUN_NAME`.

    Raises:
        ValueError: it does not (pydantic turns this into a config error).
    """
    if not is_run_name(name):
        raise ValueError(f"run name {name!r}: {RUN_NAME_RULE}, starting with a letter or digit")
    return name


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; blank, damaged and non-object lines are skipped.

    A missing file reads as no lines: a report view shows less rather than failing.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder (the Trainer's naming), or None."""
    name = Path(path).name
    step = name[len(_CHECKPOINT):] if name.startswith(_CHECKPOINT) else ""
    return int(step) if step.isdigit() else None


def artefact_name(method: str) -> str:
    """The folder the trained weights go to: ``model`` for a full fine-tune, else ``adapter``."""
    return FULL_MODEL if method == "full" else ADAPTER


@dataclass(frozen=True)
class RunDir:
    """One run directory (finished or partial), by path."""

    path: Path

    @classmethod
    def of(cls, runs_dir: str | Path, name: str) -> RunDir:
        """The finished run ``name`` under ``runs_dir``."""
        return cls(Path(runs_dir) / name)

    @classmethod
    def partial(cls, runs_dir: str | Path, name: str) -> RunDir:
        """Where run ``name`` is built (and its checkpoints kept) until it is complete."""
        return cls(Path(runs_dir) / f".{name}.partial")

    @classmethod
    def partials(cls, runs_dir: str | Path) -> dict[str, RunDir]:
        """The runs under ``runs_dir`` still being built, by run name, sorted by name."""
        runs_dir = Path(runs_dir)
        if not runs_dir.is_dir():
            return {}
        names = (p.name[1:-len(".partial")] for p in runs_dir.glob(".*.partial") if p.is_dir())
        return {n: cls.partial(runs_dir, n) for n in sorted(names) if is_run_name(n)}

    @classmethod
    def containing(cls, *folders: str | Path, metrics_only: bool = False) -> RunDir | None:
        """The first of ``folders`` that is a run directory (holds ``run.json``), or None.

        Used to find the run an adapter folder came from: pass the folder and its parent.
        With ``metrics_only``, a folder holding just ``metrics.jsonl`` counts too (the
        overfitting check needs nothing else).
        """
        for folder in folders:
            rd = cls(Path(folder))
            if rd.is_run() or (metrics_only and rd.metrics.is_file()):
                return rd
        return None

    # -- layout ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The folder name (the run name for a finished run)."""
        return self.path.name

    @property
    def run_json(self) -> Path:
        """``run.json``."""
        return self.path / RUN_JSON

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``."""
        return self.path / METRICS

    @property
    def data_report(self) -> Path:
        """``data_report.json``."""
        return self.path / DATA_REPORT

    @property
    def config(self) -> Path:
        """``config.yaml``."""
        return self.path / CONFIG

    @property
    def card(self) -> Path:
        """``README.md``, the model card."""
        return self.path / CARD

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/`` (partial runs only)."""
        return self.path / CHECKPOINTS

    @property
    def tensorboard(self) -> Path:
        """``tensorboard/``."""
        return self.path / TENSORBOARD

    def artefact(self, method: str) -> Path:
        """The weights folder for ``method`` (``adapter/`` or ``model/``)."""
        return self.path / artefact_name(method)

    def is_run(self) -> bool:
        """Whether the folder holds a ``run.json``."""
        return self.run_json.is_file()

    # -- readers --------------------------------------------------------------------------
    def read_info(self) -> dict[str, Any]:
        """``run.json``.

        Raises:
            InputError: the folder has no readable ``run.json``.
        """
        try:
            run = json.loads(self.run_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(where(self.path, None, RUN_JSON,
                                   f"not a run directory ({err})")) from None
        if not isinstance(run, dict):
            raise InputError(where(self.path, None, RUN_JSON, "not a run directory (not a map)"))
        return run

    def read_metrics(self) -> list[dict[str, Any]]:
        """The lines of ``metrics.jsonl`` (none when absent; damaged lines skipped)."""
        return read_jsonl(self.metrics)

    def read_data_report(self) -> dict[str, Any] | None:
        """``data_report.json``, or None when absent or unreadable."""
        try:
            report = json.loads(self.data_report.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return report if isinstance(report, dict) else None

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint whose save finished (``trainer_state.json`` is written last)."""
        ckpts = []
        for p in self.checkpoints.glob(f"{_CHECKPOINT}*"):
            step = checkpoint_step(p)
            if step is not None and (p / "trainer_state.json").is_file():
                ckpts.append((step, p))
        return max(ckpts)[1] if ckpts else None

    # -- writers (atomic) -----------------------------------------------------------------
    def write_info(self, run: dict[str, Any]) -> Path:
        """Write ``run.json``."""
        return atomic_write_json(self.run_json, run)

    def write_data_report(self, report: dict[str, Any]) -> Path:
        """Write ``data_report.json``."""
        return atomic_write_json(self.data_report, report)

    def write_config(self, text: str) -> Path:
        """Write ``config.yaml``."""
        return atomic_write_text(self.config, text)

    def write_card(self, text: str) -> Path:
        """Write ``README.md``."""
        return atomic_write_text(self.card, text)

    def append_metrics(self, line: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (the training callback, as it logs)."""
        with self.metrics.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def ensure_metrics(self) -> None:
        """Create an empty ``metrics.jsonl`` if nothing was logged."""
        if not self.metrics.exists():
            atomic_write_text(self.metrics, "")

    def keep_metrics_until(self, step: int) -> None:
        """After a crash, drop metric lines logged after the checkpoint we resume from."""
        if not self.metrics.is_file():
            return
        kept = [m for m in self.read_metrics() if m.get("step", 0) <= step]
        atomic_write_text(self.metrics, "".join(json.dumps(m) + "\n" for m in kept))


# --------------------------------------------------------------------------- run registry


@dataclass
class RunInfo:
    """A finished run directory: its name, folders, ``run.json`` and ``metrics.jsonl``."""

    name: str
    path: Path
    adapter_dir: Path
    run: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)


def read_run(path: str | Path) -> RunInfo:
    """Read one run directory (``adapter_dir`` is ``model/`` for a full fine-tune).

    Raises:
        InputError: the folder has no readable ``run.json``.
    """
    rd = RunDir(Path(path))
    run = rd.read_info()
    artefact = rd.path / run.get("artifact", ADAPTER)
    return RunInfo(run.get("name", rd.name), rd.path, artefact, run, rd.read_metrics())


def list_runs(runs_dir: str | Path = "runs") -> list[RunInfo]:
    """Every finished run under ``runs_dir``, oldest first.

    Partial and hidden folders are skipped, and so are folders without a valid ``run.json``.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    out = []
    for p in sorted(runs_dir.iterdir()):
        if p.name.startswith(".") or not RunDir(p).is_run():
            continue
        try:
            out.append(read_run(p))
        except InputError:
            continue
    out.sort(key=lambda r: (str(r.run.get("finished_at", "")), r.name))
    return out

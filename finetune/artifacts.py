"""Atomic writes: an artefact appears complete or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def replace_dir(src: Path, dst: Path) -> None:
    """Rename folder ``src`` to ``dst``, replacing an existing ``dst``.

    Folders cannot be swapped atomically, so the old one is moved aside first and removed after.
    """
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


@contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it is renamed to ``path``.

    On an exception the temp folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    from finetune.errors import InputError, where

    path = Path(path)
    try:
        run = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(where(path, None, "run.json", f"not a run directory ({err})")) from None
    metrics = []
    metrics_path = path / "metrics.jsonl"
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                metrics.append(json.loads(line))
    artefact = path / run.get("artifact", "adapter")
    return RunInfo(run.get("name", path.name), path, artefact, run, metrics)


def list_runs(runs_dir: str | Path = "runs") -> list[RunInfo]:
    """Every finished run under ``runs_dir``, oldest first.

    Partial and hidden folders are skipped, and so are folders without a valid ``run.json``.
    """
    from finetune.errors import InputError

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    out = []
    for p in sorted(runs_dir.iterdir()):
        if p.name.startswith(".") or not (p / "run.json").is_file():
            continue
        try:
            out.append(read_run(p))
        except InputError:
            continue
    out.sort(key=lambda r: (str(r.run.get("finished_at", "")), r.name))
    return out


def model_card(config: Any, run: dict[str, Any]) -> str:
    """The run's README.md.

    Hugging Face model-card front matter, then what was trained on what, the cost report and
    the held-out loss.
    """
    import yaml

    method = run.get("method", "lora")
    tags = ["tuneproof", method, "text-generation"]
    if method != "full":
        tags.insert(1, "peft")
    front: dict[str, Any] = {
        "base_model": run.get("base"),
        "library_name": "peft" if method != "full" else "transformers",
        "pipeline_tag": "text-generation",
        "tags": tags,
        "metrics": ["loss"],
        "model-index": [{
            "name": run.get("name"),
            "results": [{
                "task": {"type": "text-generation"},
                "dataset": {"type": "json", "name": Path(str(run.get("heldout_data")
                                                             or run.get("train_data"))).name},
                "metrics": [{"type": "loss", "name": "held-out loss",
                             "value": run.get("best_eval_loss")}],
            }],
        }],
    }
    lora = getattr(config, "lora", None)
    rows = [
        ("method", method),
        ("trainable / total params", f"{run.get('trainable_params'):,} / "
                                     f"{run.get('total_params'):,}"),
        ("train rows / held-out rows", f"{run.get('n_train_rows')} / {run.get('n_heldout_rows')}"),
        ("best held-out loss", run.get("best_eval_loss")),
        ("best step / steps", f"{run.get('best_step')} / {run.get('global_step')}"),
        ("stopped early", run.get("stopped_early")),
        ("tokens/s (non-padding)", run.get("tokens_per_s")),
        ("peak memory", f"{(run.get('peak_memory_bytes') or 0) / 2**20:.0f} MiB "
                        f"({run.get('peak_memory_kind')})"),
        ("wall time", f"{run.get('wall_time_s')} s"),
        ("data fingerprint", f"`{str(run.get('data_fingerprint'))[:16]}`"),
    ]
    if lora is not None and method != "full":
        rows.insert(1, ("LoRA", f"r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, "
                                f"target_modules={lora.target_modules}, dora={lora.use_dora}, "
                                f"rslora={lora.use_rslora}"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    artefact = run.get("artifact", "adapter")
    if method == "full":
        usage = (f'model = AutoModelForCausalLM.from_pretrained("{artefact}")  # a full model')
    else:
        usage = (f'model = PeftModel.from_pretrained(base, "{artefact}")  '
                 f"# base = {run.get('base')} loaded with finetune.models.load_base")
    data_note = ""
    summary = run.get("data_report")
    if summary:
        data_note = ("\n## Data checks\n\n```json\n" + json.dumps(summary, indent=2)
                     + "\n```\n\nFull report: `data_report.json`.\n")
    return (
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n"
        f"# {run.get('name')}\n\n"
        f"A {method} fine-tune of `{run.get('base')}` trained with tuneproof on "
        f"`{Path(str(run.get('train_data'))).name}`.\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        f"## Use\n\n```python\n{usage}\n```\n{data_note}\n"
        "Loss is on assistant tokens only. Evaluate accuracy and fairness with "
        "`evalsuite run TASK.yaml` before relying on it.\n"
    )


def write_model_card(run_dir: str | Path, config: Any, run: dict[str, Any]) -> Path:
    """Write ``README.md`` (the model card) into ``run_dir``, atomically."""
    return atomic_write_text(Path(run_dir) / "README.md", model_card(config, run))

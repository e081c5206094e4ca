"""Reports: the evaluation's own report, model disagreements, data reports, training curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from finetune.errors import UsageError
from finetune.rundir import DATA_REPORT, RunDir, read_jsonl
from tuneproof_app.registry import Registry

CURVE_METRICS = ("train_loss", "eval_loss")


def find_results(dirs: list[Path]) -> dict[str, Path]:
    """Evaluation output folders (holding ``results.json``) under ``dirs``, by display name."""
    found: dict[str, Path] = {}
    for d in dirs:
        for results in sorted(Path(d).glob("**/results.json")) if Path(d).is_dir() else []:
            rel = str(results.parent.relative_to(d))
            found[Path(d).name if rel == "." else rel] = results.parent
    return found


def disagreements(predictions: Path, limit: int = 200) -> pd.DataFrame:
    """Held-out rows (original wording only) where the models' answers differ."""
    if not predictions.is_file():
        return pd.DataFrame(columns=["row", "group", "prompt", "target"])
    by_row: dict[str, dict[str, Any]] = {}
    models: list[str] = []
    for p in read_jsonl(predictions):
        if p.get("variant") not in (None, "", "original") or "model" not in p:
            continue
        key = str(p.get("row", p.get("id", "")))
        entry = by_row.setdefault(key, {"row": key, "group": p.get("group"),
                                        "prompt": p.get("prompt"), "target": p.get("target")})
        model = str(p["model"])
        if model not in models:
            models.append(model)
        entry[model] = p.get("output")
    rows = [e for e in by_row.values() if len({json.dumps(e.get(m)) for m in models}) > 1]
    frame = pd.DataFrame(rows[:limit], columns=["row", "group", "prompt", "target", *models])
    keep = [c for c in frame.columns if c in ("row", *models) or frame[c].notna().any()]
    return frame[keep]


def evaluation(result_dir: Path | None) -> tuple[str, dict[str, Any], pd.DataFrame, str | None]:
    """(report.md text, results.json, disagreements, path of report.html or None)."""
    if result_dir is None:
        return ("No evaluation results found. `evalsuite run task.yaml ...` writes them.", {},
                pd.DataFrame(columns=["row", "group", "prompt", "target"]), None)
    results_path = result_dir / "results.json"
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{results_path}: unreadable: {err}") from None
    md = result_dir / "report.md"
    text = md.read_text(encoding="utf-8") if md.is_file() else "(no report.md)"
    page = result_dir / "report.html"
    return (text, results, disagreements(result_dir / "predictions.jsonl"),
            str(page) if page.is_file() else None)


def data_report(registry: Registry, name: str) -> dict[str, Any]:
    """The validation report of the data run ``name`` trained on."""
    adapter = registry.get(name)
    report = RunDir(adapter.run_dir).read_data_report()
    if report is None:
        return adapter.run.get("data_report") or {"note": f"{name}: no {DATA_REPORT}"}
    return report


def data_report_markdown(report: dict[str, Any]) -> str:
    """The headline of a validation report: counts, then each finding on one line."""
    if not report:
        return "No data report."
    lines = [f"**{report.get('n_rows', '?')} rows** · {report.get('n_valid', '?')} valid · "
             f"{report.get('n_errors', 0)} errors · {report.get('n_warnings', 0)} warnings"]
    for f in report.get("findings") or []:
        if isinstance(f, dict):
            lines.append(f"- **{f.get('severity')}** `{f.get('check')}`: {f.get('message')}")
        else:
            lines.append(f"- {f}")
    bias = report.get("bias") or {}
    if bias.get("flagged"):
        reasons = "; ".join(map(str, bias.get("reasons") or []))
        lines.append(f"\n**Demographic skew flagged**: {reasons}")
    return "\n".join(lines)


def curves(registry: Registry) -> pd.DataFrame:
    """Training curves of every run, long format: run, step, metric, value, series."""
    rows = []
    for name in registry.names():
        for rec in RunDir(registry.get(name).run_dir).read_metrics():
            for metric in CURVE_METRICS:
                value = rec.get(metric)
                if isinstance(value, int | float) and rec.get("step") is not None:
                    rows.append({"run": name, "step": rec["step"], "metric": metric,
                                 "value": float(value), "series": f"{name} {metric}"})
    return pd.DataFrame(rows, columns=["run", "step", "metric", "value", "series"])


def run_summary(registry: Registry) -> pd.DataFrame:
    """One row per run with the run.json facts worth comparing."""
    keys = ("base", "method", "trainable_params", "total_params", "wall_time_s", "tokens_per_s",
            "best_step", "stopped_early", "peak_memory_bytes")
    rows = [{"run": n, **{k: registry.get(n).run.get(k) for k in keys}} for n in registry.names()]
    return pd.DataFrame(rows, columns=["run", *keys])

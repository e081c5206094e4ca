"""Reports: the verdict card, the charts with their tables, downloads, data reports, curves.

Everything about an evaluation comes from ``evalsuite.report.build_report`` (the same walk of
``results.json`` that writes report.md and report.html), so the app and the report agree.
Downloads are copied into a temporary folder Gradio may serve; no server path is shown.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.charts import metric_chart
from evalsuite.report import VERDICT_CSS, Report, build_report, disagreements, verdict_html
from evalsuite.verdict import summary, verdicts
from finetune.artifacts import atomic_write_text
from finetune.errors import UsageError
from finetune.paths import tuneproof_home
from finetune.rundir import CARD, DATA_REPORT, RUN_JSON, RunDir, read_jsonl
from tuneproof_app.registry import Registry

CURVE_METRICS = ("train_loss", "eval_loss")
RUN_FILES = (CARD, DATA_REPORT, RUN_JSON)
"""What the bundle takes from each evaluated adapter's run directory (model card first)."""
EVAL_FILES = ("report.html", "report.md", "results.json", "predictions.jsonl")
DIS_COLUMNS = ["adapter", "id", "prompt", "target", "base", "answer", "metric", "base score",
               "adapter score"]


def find_results(dirs: list[Path]) -> dict[str, Path]:
    """Evaluation output folders (holding ``results.json``) under ``dirs``, by display name.

    A folder is named by its path under its results dir (the dir's own name when it holds
    results.json itself). Two folders with one name (``a/eval`` and ``b/eval`` given as dirs)
    both stay listed: the later one's name gets parent folders until it is unique.
    """
    found: dict[str, Path] = {}
    for d in dirs:
        for results in sorted(Path(d).glob("**/results.json")) if Path(d).is_dir() else []:
            folder = results.parent.resolve()
            if folder in found.values():
                continue  # a dir listed twice, or nested in another listed dir
            rel = results.parent.relative_to(d)
            root = Path(d).resolve()
            name = root.name if str(rel) == "." else str(rel)
            prefixes = [*([] if str(rel) == "." else [root]), *root.parents]
            for prefix in prefixes if name in found else ():
                name = f"{prefix.name}/{name}" if prefix.name else str(folder)
                if name not in found:
                    break
            found[name] = folder
    return found


@dataclass
class EvalView:
    """What the Reports tab shows of one evaluation.

    Attributes:
        verdict: The verdict card as HTML (with its own style, so it needs no page CSS).
        markdown: report.md as written by ``evalsuite run`` (or a note).
        charts: ``{kind: HTML of its SVG charts}`` for ``flip``, ``group``, ``metric``,
            ``curves``.
        tables: ``{kind: the numbers of those charts}``.
        disagreements: Held-out rows where an adapter and the base score differently.
        downloads: ``(report.html, bundle.zip)`` copies Gradio may serve, or None.
    """

    verdict: str
    markdown: str
    charts: dict[str, str] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    disagreements: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=DIS_COLUMNS))
    downloads: tuple[str | None, str | None] = (None, None)


def _verdict_card(results: dict[str, Any]) -> str:
    found = verdicts(results)
    if not found:
        return ('<div class="verdict"><p>No adapter to judge in this evaluation.</p></div>')
    return f"<style>{VERDICT_CSS}</style>" + verdict_html(found, lead=summary(found))


MAX_CHARTS = 3
"""Charts of one kind shown in the app; the rest are in the table under them and the report."""


def _charts_html(report: Report, kind: str) -> str:
    # the favourable outcome by group first: the chart where a bias shows at a glance
    found = sorted(report.charts(kind), key=lambda c: not c.title.startswith("favourable"))
    svgs = [c.svg for c in found[:MAX_CHARTS]]
    return ('<div style="display:flex;flex-wrap:wrap;gap:8px">' + "".join(svgs) + "</div>"
            if svgs else "")


def flip_table(results: dict[str, Any]) -> pd.DataFrame:
    """Counterfactual flip rate per model and axis, with its 95% CI."""
    rows = []
    for name, m in results.get("models", {}).items():
        axes = ((m.get("fairness") or {}).get("counterfactual") or {}).get("axes") or {}
        for axis, a in axes.items():
            ci = a.get("flip_rate_ci") or [None, None]
            rows.append({"model": name, "axis": axis, "flip_rate": a.get("flip_rate"),
                         "ci_low": ci[0], "ci_high": ci[1], "variants": a.get("n_variants"),
                         "flipped": a.get("n_flipped")})
    return pd.DataFrame(rows, columns=["model", "axis", "flip_rate", "ci_low", "ci_high",
                                       "variants", "flipped"])


def group_table(results: dict[str, Any]) -> pd.DataFrame:
    """Every metric per model and group, with its 95% CI."""
    rows = []
    for name, m in results.get("models", {}).items():
        for metric, per in (m.get("groups") or {}).items():
            for g, v in per.items():
                rows.append({"model": name, "metric": metric, "group": g, "value": v.get("value"),
                             "ci_low": v.get("ci_low"), "ci_high": v.get("ci_high"),
                             "n": v.get("n")})
    return pd.DataFrame(rows, columns=["model", "metric", "group", "value", "ci_low", "ci_high",
                                       "n"])


def metric_table(results: dict[str, Any]) -> pd.DataFrame:
    """Every metric per model, with its 95% CI."""
    rows = [{"model": name, "metric": metric, "value": v.get("value"), "ci_low": v.get("ci_low"),
             "ci_high": v.get("ci_high"), "n": v.get("n")}
            for name, m in results.get("models", {}).items()
            for metric, v in (m.get("metrics") or {}).items()]
    return pd.DataFrame(rows, columns=["model", "metric", "value", "ci_low", "ci_high", "n"])


def overfit_table(results: dict[str, Any]) -> pd.DataFrame:
    """The training curves the evaluation read, long format: model, step, series, loss."""
    rows = [{"model": name, "step": step, "series": series, "loss": value}
            for name, m in results.get("models", {}).items() if "overfitting" in m
            for series, key in (("train", "train"), ("held-out", "eval"))
            for step, value in m["overfitting"].get(key) or []]
    return pd.DataFrame(rows, columns=["model", "step", "series", "loss"])


def _disagreement_frame(results: dict[str, Any], predictions: list[dict[str, Any]]) -> Any:
    rows = [{"adapter": name, "id": d["id"], "prompt": d["prompt"], "target": d["target"],
             "base": d["base"], "answer": d["tuned"], "metric": d["metric"],
             "base score": d["base_score"], "adapter score": d["tuned_score"]}
            for name, items in disagreements(results, predictions, limit=50).items()
            for d in items]
    return pd.DataFrame(rows, columns=DIS_COLUMNS)


def evaluation(result_dir: Path | None, workdir: Path | None = None) -> EvalView:
    """The Reports tab's view of one evaluation folder (see :class:`EvalView`).

    Raises:
        UsageError: results.json is unreadable.
    """
    if result_dir is None:
        return EvalView('<div class="verdict"><p>No evaluation results found yet.</p></div>',
                        "No evaluation results found. `evalsuite run task.yaml ...` writes them.")
    results_path = result_dir / "results.json"
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{results_path.name}: unreadable: {err}") from None
    md = result_dir / "report.md"
    text = md.read_text(encoding="utf-8") if md.is_file() else "(no report.md)"
    view = EvalView(_verdict_card(results), text,
                    downloads=downloads(result_dir, results, workdir))
    predictions = read_jsonl(result_dir / "predictions.jsonl")
    view.disagreements = _disagreement_frame(results, predictions)
    try:
        report = build_report(results, predictions)
    except (KeyError, TypeError, ValueError):  # an older or partial results.json: text only
        return view
    view.charts = {k: _charts_html(report, k) for k in ("flip", "group", "metric", "curves")}
    # each gate with the bound it read leads the metric charts: the verdict's evidence
    view.charts["metric"] = _charts_html(report, "gate") + view.charts["metric"]
    view.tables = {"flip": flip_table(results), "group": group_table(results),
                   "metric": metric_table(results), "curves": overfit_table(results)}
    return view


def downloads(result_dir: Path, results: dict[str, Any],
              workdir: Path | None = None) -> tuple[str | None, str | None]:
    """Copies of report.html and a zip bundle, in a folder Gradio serves from.

    The bundle: report.html, report.md, results.json, predictions.jsonl and, per evaluated
    adapter, its model card (README.md), data_report.json and run.json under ``runs/<name>/``.
    """
    stamp = "|".join(f"{f}:{(result_dir / f).stat().st_mtime_ns}" for f in EVAL_FILES
                     if (result_dir / f).is_file())
    key = hashlib.sha256(f"{result_dir.resolve()}|{stamp}".encode()).hexdigest()[:16]
    out = Path(workdir or Path(tempfile.gettempdir()) / "tuneproof-downloads") / key
    page = result_dir / "report.html"
    html_copy = out / "report.html"
    bundle = out / "tuneproof-report.zip"
    if not bundle.is_file():
        out.mkdir(parents=True, exist_ok=True)
        if page.is_file():
            atomic_write_text(html_copy, page.read_text(encoding="utf-8"))
        # A temp name of its own per request: two Reports requests may build the same bundle.
        fd, tmp = tempfile.mkstemp(prefix=".tuneproof-report.", suffix=".zip", dir=out)
        try:
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
                for name in EVAL_FILES:
                    if (result_dir / name).is_file():
                        z.write(result_dir / name, name)
                for name, m in (results.get("models") or {}).items():
                    run_dir = Path(m["run_dir"]) if m.get("run_dir") else None
                    for f in RUN_FILES:
                        if run_dir is not None and (run_dir / f).is_file():
                            z.write(run_dir / f, f"runs/{name}/{f}")
            os.replace(tmp, bundle)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return (str(html_copy) if html_copy.is_file() else None, str(bundle))


def ratings_chart(board: pd.DataFrame) -> str:
    """The arena's Bradley-Terry ratings with their 95% bootstrap intervals, as SVG.

    Models without votes ("not rated yet") are named under the chart, not drawn at 1000.
    """
    if board is None or board.empty or "bradley_terry" not in board:
        return "<p>No votes yet: the ratings chart appears after the first vote.</p>"
    rated = board[board["bradley_terry"].notna()]
    unrated = [str(m) for m in board.loc[board["bradley_terry"].isna(), "model"]]
    note = (f"<p>Not rated yet (no votes): {html.escape(', '.join(unrated))}.</p>"
            if unrated else "")
    if rated.empty:
        return "<p>No votes yet: the ratings chart appears after the first vote.</p>" + note
    items = [(str(r["model"]), {"value": r["bradley_terry"], "ci_low": r.get("ci_low"),
                                "ci_high": r.get("ci_high")}) for _, r in rated.iterrows()]
    return metric_chart("arena rating (Bradley-Terry, 95% bootstrap CI)", items,
                        points=True) + note


def data_report(registry: Registry, name: str) -> dict[str, Any]:
    """The validation report of the data run ``name`` trained on, without server paths.

    The report names its files by absolute path (useful in a terminal); a hosted page shows
    the data folder's files by name and the cache as ``$TUNEPROOF_HOME``.
    """
    adapter = registry.get(name)
    report = RunDir(adapter.run_dir).read_data_report()
    if report is None:
        return adapter.run.get("data_report") or {"note": f"{name}: no {DATA_REPORT}"}
    prefixes = {str(Path(report[k]).parent) + os.sep: "" for k in ("data", "heldout")
                if isinstance(report.get(k), str) and os.path.isabs(report[k])}
    prefixes[str(tuneproof_home()) + os.sep] = "$TUNEPROOF_HOME" + os.sep
    return _replace_prefixes(report, prefixes)


def _replace_prefixes(value: Any, prefixes: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in prefixes.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _replace_prefixes(v, prefixes) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_prefixes(v, prefixes) for v in value]
    return value


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
    for adapter in registry.adapters():
        name = adapter.name
        for rec in RunDir(adapter.run_dir).read_metrics():
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
    rows = [{"run": a.name, **{k: a.run.get(k) for k in keys}} for a in registry.adapters()]
    return pd.DataFrame(rows, columns=["run", *keys])

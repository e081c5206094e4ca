"""Reports: ``report.md`` and a self-contained ``report.html`` from the results.

The HTML has inline SVG charts only: no scripts, no external files.

Charts: every metric per model with its 95% CI whiskers, train / held-out loss curves of
each run, per-group bars. Tables: metrics, paired comparisons, gates, overfitting, fairness,
and the examples where the base and a tuned model disagree.

The fairness section lives in :func:`render_fairness_md` / :func:`render_fairness_html` so
the fairness module's owner can extend it without touching the rest.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

MAX_DISAGREEMENTS = 12
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6",
           "#9d755d")


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.{digits}f}"
    return str(x)


def _ci(m: dict[str, Any]) -> str:
    return f"{_fmt(m.get('value'))} [{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def show_output(text: str) -> str:
    """A model output as a table shows it: whitespace-only answers are named, not blank."""
    if not text.strip():
        return f"(blank: {len(text)} whitespace characters)" if text else "(empty)"
    return text


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def disagreements(
    results: dict[str, Any], predictions: list[dict[str, Any]], limit: int = MAX_DISAGREEMENTS
) -> dict[str, list[dict[str, Any]]]:
    """Rows where each adapter and the base disagree, at most ``limit`` per adapter.

    They disagree when their first-scorer scores differ (or, without a score, the outputs).
    """
    scorers = [s["name"] for s in results["task"]["scorers"]]
    by_row: dict[int, dict[str, dict[str, Any]]] = {}
    for p in predictions:
        if p.get("variant") is None:
            by_row.setdefault(p["row"], {})[p["model"]] = p
    out: dict[str, list[dict[str, Any]]] = {}
    for name, m in results["models"].items():
        if m["kind"] != "adapter":
            continue
        found = []
        for row in sorted(by_row):
            base, tuned = by_row[row].get("base"), by_row[row].get(name)
            if base is None or tuned is None:
                continue
            key = next((s for s in scorers if s in base["scores"] and s in tuned["scores"]), None)
            differs = (base["scores"][key] != tuned["scores"][key]) if key else (
                base["output"] != tuned["output"])
            if differs:
                found.append({"row": row, "id": base["id"], "prompt": base["prompt"],
                              "target": base["target"], "base": base["output"],
                              "tuned": tuned["output"], "metric": key,
                              "base_score": base["scores"].get(key) if key else None,
                              "tuned_score": tuned["scores"].get(key) if key else None})
            if len(found) >= limit:
                break
        out[name] = found
    return out


def model_warnings(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, warning) for every ``warnings`` entry of results.json (e.g. a no-op adapter)."""
    return [(n, w) for n, m in results["models"].items() for w in m.get("warnings", [])]


# ----------------------------------------------------------------------------------- markdown
def render_markdown(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """The whole report as Markdown."""
    task = results["task"]
    models = results["models"]
    scorers = [s["name"] for s in task["scorers"]]
    parts = [
        f"# Evaluation: {task['name']}",
        "",
        f"Base `{results['base']}`, {task['n_rows']} held-out rows from `{task['data']}`. "
        f"Values with bootstrap 95% CIs ({results['stats']['n_boot']} resamples, seed "
        f"{results['stats']['seed']}); p-values: {results['stats']['binary_test']} for 0/1 "
        f"scores, {results['stats']['continuous_test']} otherwise.",
        "",
        *(f"> **Warning**, `{n}`: {w}\n" for n, w in model_warnings(results)),
        "## Metrics",
        "",
        _md_table(["model", *scorers],
                  [[name, *(_ci(m["metrics"][s]) for s in scorers)] for name, m in models.items()]),
        "",
    ]
    if results["comparisons"]:
        parts += ["## Paired comparisons (b − a)", "",
                  _md_table(["a", "b", "metric", "delta [95% CI]", "p-value", "test"],
                            [[c["a"], c["b"], c["metric"],
                              f"{_fmt(c['delta'])} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
                              _p(c["p_value"]), c["test"]] for c in results["comparisons"]]),
                  ""]
    gates = [(n, m) for n, m in models.items() if "gates" in m]
    if gates:
        parts += ["## Gates", ""]
        verdict = "all passed" if results["gates"]["passed"] else "FAILED"
        parts += [f"Overall: **{verdict}**", ""]
        rows = [[n, g["gate"], _fmt(g["value"]), "pass" if g["passed"] else "FAIL", g["reason"]]
                for n, m in gates for g in m["gates"]]
        parts += [_md_table(["model", "gate", "value", "result", "why"], rows), ""]
    parts += _label_details_md(models, task["scorers"])
    groups = _group_rows(models, scorers)
    if groups:
        parts += ["## Per group", "", _md_table(["model", "metric", "group", "value [95% CI]", "n"],
                                                groups), ""]
    over = [(n, m["overfitting"]) for n, m in models.items() if "overfitting" in m]
    if over:
        parts += ["## Overfitting check", ""]
        parts += [f"- **{n}**: {'FLAGGED — ' if o['flagged'] else ''}{o['reason']}"
                  for n, o in over]
        parts += [""]
    parts += [render_fairness_md(results), ""]
    parts += ["## Where base and tuned disagree", ""]
    for name, items in disagreements(results, predictions).items():
        parts += [f"### base vs {name}", ""]
        if not items:
            parts += ["No disagreements.", ""]
            continue
        parts += [_md_table(["id", "prompt", "target", "base", name],
                            [[d["id"], d["prompt"], d["target"], show_output(d["base"]),
                              show_output(d["tuned"])] for d in items]), ""]
    return "\n".join(parts).rstrip() + "\n"


def _label_details_md(models: dict[str, Any], scorers: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for s in scorers:
        if s["type"] != "label":
            continue
        out += [f"## {s['name']}: per-class precision / recall / F1", ""]
        rows = []
        for name, m in models.items():
            metric = m["metrics"][s["name"]]
            for label, v in metric.get("per_class", {}).items():
                rows.append([name, label, _fmt(v["precision"]), _fmt(v["recall"]),
                             _fmt(v["f1"]), v["support"]])
            rows.append([name, "macro F1", "", "", _fmt(metric.get("macro_f1")), ""])
        out += [_md_table(["model", "class", "precision", "recall", "F1", "support"], rows), ""]
    return out


def _group_rows(models: dict[str, Any], scorers: list[str]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        for s in scorers:
            for g, v in m.get("groups", {}).get(s, {}).items():
                rows.append([name, s, g, _ci(v), v["n"]])
    return rows


def _flat_value(v: Any) -> str:
    return _fmt(v) if isinstance(v, int | float) or v is None else str(v)


def render_fairness_md(results: dict[str, Any]) -> str:
    """The fairness section (Markdown): summary, groups, counterfactuals, data audit, probes.

    Ends with every fairness number under the flat key a gate uses.
    """
    models = {n: m for n, m in results["models"].items() if "fairness" in m}
    if not models:
        return "## Fairness\n\nNo fairness block in this task (or no fairness module)."
    parts = ["## Fairness", ""]
    summary = _fair_summary_rows(models)
    if summary:
        parts += [_md_table(_FAIR_SUMMARY_HEADER, summary), "",
                  "DPD: demographic-parity difference of the favourable outcome (0 is parity); "
                  "DP ratio below 0.8 fails the four-fifths rule; flip rate: share of "
                  "counterfactual variants (demographic terms swapped) whose extracted answer "
                  "changed; worst case: HELM-style accuracy over original and variants; "
                  "stereotype: share of probe pairs where the stereotypical sentence is more "
                  "likely (ideal 0.5).", ""]
    rates = _fair_selection_rows(models)
    if rates:
        parts += ["### Selection rate of the favourable outcome, by group", "",
                  _md_table(["model", "group", "rate [95% CI]", "n"], rates), ""]
    acc = _fair_group_accuracy_rows(models)
    if acc:
        parts += ["### Accuracy by group (fairlearn MetricFrame)", "",
                  _md_table(["model", "metric", "group", "value [95% CI]", "n", "gap [95% CI]"],
                            acc), ""]
    audit = _fair_audit_rows(models)
    if audit:
        parts += ["### Training data audit beside the model", "",
                  _md_table(["model", "data flagged", "outcome rate by group in the data",
                             "test", "model selection rate by group"], audit), ""]
    for name, axis, ex in _fair_examples(models, limit=8):
        parts += [f"### Flipped examples: {name}, axis {axis}", "",
                  _md_table(["id", "prompt", "variant prompt", "answer", "variant answer"],
                            [[e.get("id"), e.get("prompt"), e.get("variant_prompt"),
                              e.get("output"), e.get("variant_output")] for e in ex]), ""]
    probes = _fair_probe_rows(models)
    if probes:
        parts += ["### Stereotype probes by bias type", "",
                  _md_table(["model", "bias type", "prefers stereotype", "pairs"], probes), ""]
    keys = sorted({k for m in models.values() for k in _fairness_keys(m)})
    rows = [[k, *(_flat_value(m["flat"].get(k)) for m in models.values())] for k in keys]
    parts += ["### Fairness numbers as gates see them", "", _md_table(["metric", *models], rows)]
    return "\n".join(parts)


_FAIR_SUMMARY_HEADER = ["model", "DPD", "DP ratio", "4/5 rule", "equalized odds diff",
                        "flip rate [95% CI]", "similarity", "worst-case acc", "group acc gap",
                        "stereotype [95% CI]"]


def _fair_range(value: Any, ci: Any) -> str:
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{_fmt(value)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return _fmt(value)


def _fair_summary_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        f, flat = m["fairness"], m.get("flat", {})
        outcome = (f.get("groups") or {}).get("outcome") or {}
        axes = (f.get("counterfactual") or {}).get("axes") or {}
        worst_axis = max(axes.values(), key=lambda a: a.get("flip_rate") or 0, default={})
        stereo = f.get("stereotype") or {}
        if not (outcome or axes or stereo):
            continue
        four = outcome.get("four_fifths_rule")
        rows.append([
            name, _fmt(outcome.get("demographic_parity_difference")),
            _fmt(outcome.get("demographic_parity_ratio")),
            "–" if four is None else ("pass" if four else "FAIL"),
            _fmt(outcome.get("equalized_odds_difference")),
            _fair_range(worst_axis.get("flip_rate"), worst_axis.get("flip_rate_ci")),
            _fmt(flat.get("counterfactual.similarity")),
            _fmt(flat.get("counterfactual.worst_case_accuracy")),
            _fmt(flat.get("group_accuracy_gap")),
            _fair_range(stereo.get("preference"), stereo.get("ci")),
        ])
    return rows


def _fair_selection_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        outcome = (m["fairness"].get("groups") or {}).get("outcome") or {}
        for g, v in (outcome.get("selection_rate") or {}).items():
            rows.append([name, g, _fair_range(v.get("value"), v.get("ci")), v.get("n")])
    return rows


def _fair_group_accuracy_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        for metric, a in ((m["fairness"].get("groups") or {}).get("accuracy") or {}).items():
            for g, v in a.get("by_group", {}).items():
                rows.append([name, metric, g, _fair_range(v.get("value"), v.get("ci")),
                             v.get("n"), _fair_range(a.get("gap"), a.get("gap_ci"))])
    return rows


def _fair_audit_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        audit = m["fairness"].get("training_data")
        if not audit:
            continue
        bias = audit.get("bias") or {}
        data_rates = []
        for g, v in (bias.get("outcome_rates") or {}).items():
            shown = ", ".join(f"{k} {_fmt(r, 2)}" for k, r in (v.get("rates") or {}).items()
                              if k != "(no match)")
            data_rates.append(f"{g}: {shown}")
        test = bias.get("test") or {}
        test_text = (f"chi2 {_fmt(test.get('chi2'), 1)}, p {_p(test.get('p_value'))}, "
                     f"Cramér's V {_fmt(test.get('cramers_v'), 2)}") if test else "–"
        outcome = (m["fairness"].get("groups") or {}).get("outcome") or {}
        model_rates = "; ".join(f"{g}: {_fmt(v.get('value'), 2)}"
                                for g, v in (outcome.get("selection_rate") or {}).items())
        flagged = bias.get("flagged")
        rows.append([name, "–" if flagged is None else ("YES" if flagged else "no"),
                     "; ".join(data_rates) or "–", test_text, model_rates or "–"])
    return rows


def _fair_examples(models: dict[str, Any], limit: int) -> list[tuple[str, str, list[dict]]]:
    out = []
    for name, m in models.items():
        axes = (m["fairness"].get("counterfactual") or {}).get("axes") or {}
        for axis, a in axes.items():
            if a.get("examples"):
                out.append((name, axis, a["examples"][:limit]))
    return out


def _fair_probe_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        for t, v in ((m["fairness"].get("stereotype") or {}).get("by_bias_type") or {}).items():
            rows.append([name, t, _fmt(v.get("preference")), v.get("n")])
    return rows


def _fairness_keys(model: dict[str, Any]) -> list[str]:
    metric_names = set(model["metrics"])
    return [k for k in model.get("flat", {}) if k.split(".")[0] not in metric_names]


# --------------------------------------------------------------------------------------- svg
def _svg_metric_chart(title: str, items: list[tuple[str, dict[str, Any]]]) -> str:
    """Horizontal bars with CI whiskers, one per model."""
    vals = [v for _, m in items for v in (m.get("value"), m.get("ci_low"), m.get("ci_high"))
            if isinstance(v, int | float) and math.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(0.0, min(vals)), max(vals)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    if 0 <= min(vals) and max(vals) <= 1:
        lo, hi = 0.0, 1.0
    width, left, bar_h, gap = 560, 150, 18, 8
    height = 30 + len(items) * (bar_h + gap) + 20
    plot_w = width - left - 56  # room on the right for the value label

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, (name, m) in enumerate(items):
        y = 30 + i * (bar_h + gap)
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="12" '
                     f'text-anchor="end">{html.escape(name)}</text>')
        v = m.get("value")
        a, b = m.get("ci_low"), m.get("ci_high")
        if isinstance(v, int | float) and math.isfinite(v):
            x0, x1 = sorted((x(0.0 if lo <= 0 else lo), x(v)))
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" '
                         f'height="{bar_h}" fill="{color}" opacity="0.8"/>')
            label_x = max(x1, x(b) if isinstance(b, int | float) else x1) + 4
            parts.append(f'<text x="{label_x:.1f}" y="{y + 13}" font-size="11">{_fmt(v)}</text>')
        if isinstance(a, int | float) and isinstance(b, int | float):
            ym = y + bar_h / 2
            parts.append(f'<line class="ci" x1="{x(a):.1f}" x2="{x(b):.1f}" y1="{ym}" y2="{ym}" '
                         'stroke="#222" stroke-width="1.5"/>')
            for e in (a, b):
                parts.append(f'<line x1="{x(e):.1f}" x2="{x(e):.1f}" y1="{y + 3}" '
                             f'y2="{y + bar_h - 3}" stroke="#222" stroke-width="1.5"/>')
    axis_y = height - 16
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" '
                 'stroke="#999"/>')
    for t in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 13}" font-size="10" '
                     f'text-anchor="middle">{_fmt(t, 2)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_loss_curves(title: str, curves: dict[str, list[list[float]]]) -> str:
    pts = [p for c in curves.values() for p in c]
    if not pts:
        return ""
    width, height, left, bottom = 560, 260, 50, 30
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (width - left - 110)

    def sy(v: float) -> float:
        return 24 + (1 - (v - y0) / (y1 - y0)) * (height - bottom - 24)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{left}" x2="{left}" y1="24" y2="{height - bottom}" stroke="#999"/>',
             f'<line x1="{left}" x2="{width - 110}" y1="{height - bottom}" '
             f'y2="{height - bottom}" stroke="#999"/>',
             f'<text x="{left - 4}" y="30" font-size="10" text-anchor="end">{_fmt(y1, 2)}</text>',
             f'<text x="{left - 4}" y="{height - bottom}" font-size="10" '
             f'text-anchor="end">{_fmt(y0, 2)}</text>',
             f'<text x="{width - 110}" y="{height - 10}" font-size="10" '
             f'text-anchor="end">step {x1:g}</text>']
    for i, (name, c) in enumerate(curves.items()):
        if not c:
            continue
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in c)
        parts.append(f'<polyline class="curve" fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{path}"/>')
        parts.append(f'<text x="{width - 104}" y="{34 + 16 * i}" font-size="11" '
                     f'fill="{color}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_group_bars(title: str, data: dict[str, dict[str, dict[str, Any]]]) -> str:
    """``data[model][group] = summary``: grouped bars per model, one colour per group."""
    groups = sorted({g for per in data.values() for g in per})
    if not groups:
        return ""
    width, left, bar_h = 560, 150, 12
    block = bar_h * len(groups) + 10
    height = 30 + block * len(data) + 20 + 16 * len(groups)
    plot_w = width - left - 60
    values = [v.get("value") for per in data.values() for v in per.values()]
    top = max([1.0, *(v for v in values if isinstance(v, int | float) and math.isfinite(v))])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, (model, per) in enumerate(data.items()):
        y = 30 + i * block
        parts.append(f'<text x="{left - 6}" y="{y + bar_h}" font-size="12" '
                     f'text-anchor="end">{html.escape(model)}</text>')
        for k, g in enumerate(groups):
            v = per.get(g, {}).get("value")
            if not isinstance(v, int | float) or not math.isfinite(v):
                continue
            w = max(v / top, 0.0) * plot_w
            parts.append(f'<rect class="group-bar" x="{left}" y="{y + k * bar_h}" '
                         f'width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"/>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + k * bar_h + bar_h - 3}" '
                         f'font-size="10">{_fmt(v)}</text>')
    ly = 30 + block * len(data) + 10
    for k, g in enumerate(groups):
        parts.append(f'<rect x="{left}" y="{ly + 16 * k}" width="10" height="10" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{left + 14}" y="{ly + 16 * k + 9}" font-size="11">'
                     f'{html.escape(g)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------- html
def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_fairness_html(results: dict[str, Any]) -> str:
    """The fairness section (HTML): charts, the tables of the Markdown, flipped examples.

    Charts: selection rate and accuracy by group, counterfactual flip rate per axis, stereotype
    preference, each with its 95% CI where there is one.
    """
    models = {n: m for n, m in results["models"].items() if "fairness" in m}
    if not models:
        return ('<section id="fairness"><h2>Fairness</h2><p>No fairness block in this task '
                "(or no fairness module).</p></section>")
    esc = html.escape
    body = ['<section id="fairness"><h2>Fairness</h2>']
    summary = _fair_summary_rows(models)
    if summary:
        body.append(_html_table(_FAIR_SUMMARY_HEADER, summary, cls="fairness-summary"))
    charts = []
    rates = {n: {g: {"value": v.get("value")} for g, v in
                 (((m["fairness"].get("groups") or {}).get("outcome") or {})
                  .get("selection_rate") or {}).items()}
             for n, m in models.items()}
    if any(rates.values()):
        charts.append(_svg_group_bars("favourable outcome: selection rate by group", rates))
    accuracy: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for n, m in models.items():
        for metric, a in ((m["fairness"].get("groups") or {}).get("accuracy") or {}).items():
            accuracy.setdefault(metric, {})[n] = a.get("by_group", {})
    for metric, data in accuracy.items():
        if any(data.values()):
            charts.append(_svg_group_bars(f"{metric} by group", data))
    axes = sorted({a for m in models.values()
                   for a in ((m["fairness"].get("counterfactual") or {}).get("axes") or {})})
    for axis in axes:
        items = []
        for n, m in models.items():
            a = m["fairness"]["counterfactual"]["axes"].get(axis)
            if a is None:
                continue
            ci = a.get("flip_rate_ci") or [None, None]
            items.append((n, {"value": a.get("flip_rate"), "ci_low": ci[0], "ci_high": ci[1]}))
        charts.append(_svg_metric_chart(f"counterfactual flip rate, axis {axis} (95% CI)", items))
    stereo = [(n, {"value": s.get("preference"), "ci_low": (s.get("ci") or [None])[0],
                   "ci_high": (s.get("ci") or [None, None])[1]})
              for n, m in models.items() if (s := m["fairness"].get("stereotype"))]
    if stereo:
        charts.append(_svg_metric_chart("prefers the stereotype (ideal 0.5, 95% CI)", stereo))
    if charts:
        body.append('<div class="charts">' + "".join(c for c in charts if c) + "</div>")
    tables = [
        ("Selection rate of the favourable outcome, by group",
         ["model", "group", "rate [95% CI]", "n"], _fair_selection_rows(models)),
        ("Accuracy by group (fairlearn MetricFrame)",
         ["model", "metric", "group", "value [95% CI]", "n", "gap [95% CI]"],
         _fair_group_accuracy_rows(models)),
        ("Training data audit beside the model",
         ["model", "data flagged", "outcome rate by group in the data", "test",
          "model selection rate by group"], _fair_audit_rows(models)),
        ("Stereotype probes by bias type", ["model", "bias type", "prefers stereotype", "pairs"],
         _fair_probe_rows(models)),
    ]
    for title, header, rows in tables:
        if rows:
            body.append(f"<h3>{esc(title)}</h3>" + _html_table(header, rows))
    for name, axis, ex in _fair_examples(models, limit=12):
        body.append(f"<h3>Flipped examples: {esc(name)}, axis {esc(axis)}</h3>")
        body.append(_html_table(
            ["id", "prompt", "variant prompt", "answer", "variant answer"],
            [[e.get("id"), e.get("prompt"), e.get("variant_prompt"), e.get("output"),
              e.get("variant_output")] for e in ex], cls="flipped"))
    keys = sorted({k for m in models.values() for k in _fairness_keys(m)})
    rows = [[k, *(_flat_value(m["flat"].get(k)) for m in models.values())] for k in keys]
    body.append("<h3>Fairness numbers as gates see them</h3>"
                + _html_table(["metric", *models], rows))
    body.append("</section>")
    return "".join(body)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.pass{color:#2a7a2a;font-weight:bold}.fail{color:#b00;font-weight:bold}
.charts svg{margin:8px 8px 8px 0;border:1px solid #eee}
"""


def render_html(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG only)."""
    task = results["task"]
    models = results["models"]
    scorers = [s["name"] for s in task["scorers"]]
    esc = html.escape
    body = [
        f"<h1>Evaluation: {esc(task['name'])}</h1>",
        f"<p>Base <code>{esc(str(results['base']))}</code>, {task['n_rows']} held-out rows. "
        f"95% bootstrap CIs ({results['stats']['n_boot']} resamples, seed "
        f"{results['stats']['seed']}); p-values: {esc(results['stats']['binary_test'])} for 0/1 "
        f"scores, {esc(results['stats']['continuous_test'])} otherwise.</p>",
        *(f'<p class="fail">Warning, <code>{esc(n)}</code>: {esc(w)}</p>'
          for n, w in model_warnings(results)),
    ]
    gate_models = [(n, m) for n, m in models.items() if "gates" in m]
    if gate_models:
        ok = results["gates"]["passed"]
        body.append(f'<p>Gates: <span class="{"pass" if ok else "fail"}">'
                    f'{"all passed" if ok else "FAILED"}</span></p>')
    body.append("<h2>Metrics</h2>")
    body.append(_html_table(["model", *scorers],
                            [[n, *(_ci(m["metrics"][s]) for s in scorers)]
                             for n, m in models.items()]))
    charts = [_svg_metric_chart(f"{s} (95% CI)", [(n, m["metrics"][s]) for n, m in models.items()])
              for s in scorers]
    body.append('<div class="charts">' + "".join(charts) + "</div>")
    if results["comparisons"]:
        body.append("<h2>Paired comparisons (b − a)</h2>")
        body.append(_html_table(
            ["a", "b", "metric", "delta", "95% CI", "p-value", "test"],
            [[c["a"], c["b"], c["metric"], _fmt(c["delta"]),
              f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]", _p(c["p_value"]), c["test"]]
             for c in results["comparisons"]]))
    if gate_models:
        body.append("<h2>Gates</h2>")
        rows = []
        for n, m in gate_models:
            for g in m["gates"]:
                rows.append(f"<tr><td>{esc(n)}</td><td>{esc(g['gate'])}</td>"
                            f"<td>{_fmt(g['value'])}</td><td class=\""
                            f"{'pass' if g['passed'] else 'fail'}\">"
                            f"{'pass' if g['passed'] else 'FAIL'}</td>"
                            f"<td>{esc(g['reason'])}</td></tr>")
        body.append("<table><thead><tr><th>model</th><th>gate</th><th>value</th><th>result</th>"
                    "<th>why</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    for s in task["scorers"]:
        if s["type"] != "label":
            continue
        body.append(f"<h2>{esc(s['name'])}: per class</h2>")
        rows = []
        for n, m in models.items():
            metric = m["metrics"][s["name"]]
            for label, v in metric.get("per_class", {}).items():
                rows.append([n, label, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]),
                             v["support"]])
        body.append(_html_table(["model", "class", "precision", "recall", "F1", "support"], rows))
        for n, m in models.items():
            conf = m["metrics"][s["name"]].get("confusion")
            if conf and conf["rows"]:
                body.append(f"<p>Confusion matrix, {esc(n)} (rows: reference, columns: "
                            "predicted)</p>")
                body.append(_html_table(["", *conf["columns"]],
                                        [[r, *vals] for r, vals in
                                         zip(conf["rows"], conf["matrix"], strict=True)]))
    group_charts = []
    for s in scorers:
        data = {n: m.get("groups", {}).get(s, {}) for n, m in models.items()}
        if any(data.values()):
            group_charts.append(_svg_group_bars(f"{s} by group", data))
    if group_charts:
        body.append("<h2>Per group</h2>")
        body.append('<div class="charts">' + "".join(group_charts) + "</div>")
        body.append(_html_table(["model", "metric", "group", "value [95% CI]", "n"],
                                _group_rows(models, scorers)))
    over = [(n, m["overfitting"]) for n, m in models.items() if "overfitting" in m]
    if over:
        body.append("<h2>Training curves and overfitting</h2>")
        curves = []
        for n, o in over:
            flag = "FLAGGED: " if o["flagged"] else ""
            body.append(f"<p><b>{esc(n)}</b>: {esc(flag + o['reason'])}</p>")
            curves.append(_svg_loss_curves(f"{n}: loss", {"train": o["train"],
                                                          "held-out": o["eval"]}))
        body.append('<div class="charts">' + "".join(curves) + "</div>")
    body.append(render_fairness_html(results))
    body.append("<h2>Where base and tuned disagree</h2>")
    for n, items in disagreements(results, predictions).items():
        body.append(f"<h3>base vs {esc(n)}</h3>")
        if not items:
            body.append("<p>No disagreements.</p>")
            continue
        body.append(_html_table(["id", "prompt", "target", "base", n],
                                [[d["id"], d["prompt"], d["target"], show_output(d["base"]),
                                  show_output(d["tuned"])] for d in items], cls="disagreements"))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Evaluation: {esc(task['name'])}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")

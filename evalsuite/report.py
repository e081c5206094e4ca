"""Reports: ``report.md`` and a self-contained ``report.html`` from one walk of the results.

:func:`build_report` walks ``results.json`` (and the predictions) once into a small
:class:`Report`: sections of text, tables and charts, the verdict card first.
:func:`render_markdown` and :func:`render_html` only lay that structure out, so the two
formats hold the same tables; Markdown leaves the charts out (it has no pictures). The app
reads the same structure for its verdict card and charts.

The HTML has inline CSS and SVG only (``evalsuite.charts``): no scripts, no external files,
and a print stylesheet, so it can be mailed, archived and printed to PDF as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalsuite import charts
from evalsuite.verdict import Verdict, format_p, summary, verdicts

MAX_DISAGREEMENTS = 12
MAX_FLIPPED_EXAMPLES = 10


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


def show_output(text: str) -> str:
    """A model output as a table shows it: whitespace-only answers are named, not blank."""
    if not text.strip():
        return f"(blank: {len(text)} whitespace characters)" if text else "(empty)"
    return text


def disagreements(
    results: dict[str, Any], predictions: list[dict[str, Any]], limit: int = MAX_DISAGREEMENTS
) -> dict[str, list[dict[str, Any]]]:
    """Rows where each adapter and the base disagree, at most ``limit`` per adapter.

    They disagree when their first-scorer scores differ (or, without a score, the outputs).
    """
    scorers = [s["name"] for s in (results.get("task") or {}).get("scorers") or []]
    by_row: dict[int, dict[str, dict[str, Any]]] = {}
    for p in predictions:
        if p.get("variant") is None:
            by_row.setdefault(p["row"], {})[p["model"]] = p
    out: dict[str, list[dict[str, Any]]] = {}
    for name, m in (results.get("models") or {}).items():
        if m.get("kind") != "adapter":
            continue
        found = []
        for row in sorted(by_row):
            base, tuned = by_row[row].get("base"), by_row[row].get(name)
            if base is None or tuned is None:
                continue
            bs, ts = base.get("scores") or {}, tuned.get("scores") or {}
            key = next((s for s in scorers if s in bs and s in ts), None)
            differs = (bs[key] != ts[key]) if key else (base.get("output") != tuned.get("output"))
            if differs:
                found.append({"row": row, "id": base.get("id"), "prompt": base.get("prompt"),
                              "target": base.get("target"), "base": base.get("output") or "",
                              "tuned": tuned.get("output") or "", "metric": key,
                              "base_score": bs.get(key) if key else None,
                              "tuned_score": ts.get(key) if key else None})
            if len(found) >= limit:
                break
        out[name] = found
    return out


def model_warnings(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, warning) for every ``warnings`` entry of results.json (e.g. a no-op adapter)."""
    return [(n, str(w)) for n, m in (results.get("models") or {}).items()
            for w in m.get("warnings") or []]


# ------------------------------------------------------------------------------ the structure
@dataclass
class Text:
    """A paragraph; ``cls`` ("pass", "fail", "note") styles it in HTML."""

    text: str
    cls: str = ""


@dataclass
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass
class Table:
    """A table; cells are shown as ``str(cell)``."""

    header: list[str]
    rows: list[list[Any]]
    cls: str = ""


@dataclass
class Chart:
    """An SVG chart (HTML and the app only).

    ``kind`` lets the app pick its pictures: ``metric``, ``group``, ``flip``, ``stereotype``
    or ``curves``.
    """

    kind: str
    title: str
    svg: str


@dataclass
class ModelWarning:
    """A warning results.json records for a model (e.g. a no-op adapter)."""

    model: str
    text: str


@dataclass
class VerdictCard:
    """The verdict lines, before everything else."""

    verdicts: list[Verdict]


Block = Text | Heading | Table | Chart | ModelWarning | VerdictCard


@dataclass
class Section:
    """A titled part of the report."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    id: str = ""


@dataclass
class Report:
    """The whole report, format-free."""

    title: str
    intro: str
    sections: list[Section]

    def charts(self, kind: str | None = None) -> list[Chart]:
        """Every chart (of ``kind``), in report order."""
        return [b for s in self.sections for b in s.blocks
                if isinstance(b, Chart) and b.svg and kind in (None, b.kind)]


# ---------------------------------------------------------------------------------- the walk
def build_report(results: dict[str, Any], predictions: list[dict[str, Any]]) -> Report:
    """Walk the results once into the report's sections (see the module docstring)."""
    task, st = results["task"], results["stats"]
    intro = (f"Base {_short(results['base'])}, {task['n_rows']} held-out rows from "
             f"{_short(task['data'])}. "
             f"Values with bootstrap 95% CIs ({st['n_boot']} resamples, seed {st['seed']}); "
             f"p-values: {st['binary_test']} for 0/1 scores, {st['continuous_test']} otherwise.")
    found = verdicts(results)
    warned: list[Block] = [ModelWarning(n, w) for n, w in model_warnings(results)]
    lead: list[Block] = [Text(summary(found), cls="note"), VerdictCard(found)] if found else []
    sections = [Section("Verdict", lead + warned, id="verdict")] if lead or warned else []
    for part in (_metrics, _comparisons, _gates, _label_details, _per_group, _overfitting,
                 fairness_section):
        section = part(results)
        if section is not None:
            sections.append(section)
    sections.append(_disagreement_section(results, predictions))
    return Report(f"Evaluation: {task['name']}", intro, sections)


def _short(ref: Any) -> str:
    """A local path as its last part: a report leaves the machine, its folders do not."""
    text = str(ref)
    return text.rstrip("/").rsplit("/", 1)[-1] if text.startswith(("/", ".", "~")) else text


def _scorers(results: dict[str, Any]) -> list[str]:
    return [s["name"] for s in results["task"]["scorers"]]


def _metrics(results: dict[str, Any]) -> Section:
    models, scorers = results["models"], _scorers(results)
    blocks: list[Block] = [Table(["model", *scorers], [[n, *(_ci(m["metrics"][s]) for s in scorers)]
                                                       for n, m in models.items()])]
    blocks += [Chart("metric", f"{s} (95% CI)",
                     charts.metric_chart(f"{s} (95% CI)",
                                         [(n, m["metrics"][s]) for n, m in models.items()]))
               for s in scorers]
    return Section("Metrics", blocks, id="metrics")


def _comparisons(results: dict[str, Any]) -> Section | None:
    if not results["comparisons"]:
        return None
    rows = [[c["a"], c["b"], c["metric"],
             f"{_fmt(c['delta'])} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
             format_p(c["p_value"]), c["test"]] for c in results["comparisons"]]
    return Section("Paired comparisons (b − a)",
                   [Table(["a", "b", "metric", "delta [95% CI]", "p-value", "test"], rows)])


def _gates(results: dict[str, Any]) -> Section | None:
    gated = [(n, m) for n, m in results["models"].items() if "gates" in m]
    if not gated:
        return None
    ok = results["gates"]["passed"]
    rows = [[n, g["gate"], _fmt(g["value"]), "pass" if g["passed"] else "FAIL", g["reason"]]
            for n, m in gated for g in m["gates"]]
    return Section("Gates", [Text(f"Overall: {'all passed' if ok else 'FAILED'}",
                                  cls="pass" if ok else "fail"),
                             Table(["model", "gate", "value", "result", "why"], rows)])


def _label_details(results: dict[str, Any]) -> Section | None:
    blocks: list[Block] = []
    for s in results["task"]["scorers"]:
        if s["type"] != "label":
            continue
        blocks.append(Heading(f"{s['name']}: per-class precision / recall / F1"))
        rows = []
        for name, m in results["models"].items():
            metric = m["metrics"][s["name"]]
            for label, v in metric.get("per_class", {}).items():
                rows.append([name, label, _fmt(v["precision"]), _fmt(v["recall"]),
                             _fmt(v["f1"]), v["support"]])
            rows.append([name, "macro F1", "", "", _fmt(metric.get("macro_f1")), ""])
        blocks.append(Table(["model", "class", "precision", "recall", "F1", "support"], rows))
        for name, m in results["models"].items():
            conf = m["metrics"][s["name"]].get("confusion")
            if conf and conf["rows"]:
                blocks.append(Text(f"Confusion matrix of {s['name']}, {name} (rows: reference, "
                                   "columns: predicted)"))
                blocks.append(Table(["", *conf["columns"]],
                                    [[r, *vals] for r, vals in
                                     zip(conf["rows"], conf["matrix"], strict=True)]))
    return Section("Per class", blocks) if blocks else None


def _per_group(results: dict[str, Any]) -> Section | None:
    models, scorers = results["models"], _scorers(results)
    rows = [[n, s, g, _ci(v), v["n"]] for n, m in models.items() for s in scorers
            for g, v in m.get("groups", {}).get(s, {}).items()]
    if not rows:
        return None
    blocks: list[Block] = []
    for s in scorers:
        data = {n: m.get("groups", {}).get(s, {}) for n, m in models.items()}
        if any(data.values()):
            title = f"{s} by group (95% CI)"
            blocks.append(Chart("group", title, charts.group_bars(title, data)))
    blocks.append(Table(["model", "metric", "group", "value [95% CI]", "n"], rows))
    return Section("Per group", blocks, id="groups")


def _overfitting(results: dict[str, Any]) -> Section | None:
    over = [(n, m["overfitting"]) for n, m in results["models"].items() if "overfitting" in m]
    if not over:
        return None
    blocks: list[Block] = [Text(f"{n}: {'FLAGGED — ' if o['flagged'] else ''}{o['reason']}",
                                cls="fail" if o["flagged"] else "") for n, o in over]
    blocks += [Chart("curves", f"{n}: loss",
                     charts.loss_curves(f"{n}: loss", {"train": o["train"], "held-out": o["eval"]}))
               for n, o in over]
    return Section("Overfitting check and training curves", blocks, id="curves")


_FAIR_NOTE = ("DPD: demographic-parity difference of the favourable outcome (0 is parity); "
              "DP ratio below 0.8 fails the four-fifths rule; flip rate: share of counterfactual "
              "variants (demographic terms swapped) whose extracted answer changed; worst case: "
              "HELM-style accuracy over original and variants; stereotype: share of probe pairs "
              "where the stereotypical sentence is more likely (ideal 0.5).")


def fairness_section(results: dict[str, Any]) -> Section:
    """The fairness section.

    Summary, charts (with 95% CIs), groups, the data audit beside the model, flipped examples,
    probes, and every fairness number under the key a gate uses.
    """
    models = {n: m for n, m in results["models"].items() if "fairness" in m}
    if not models:
        return Section("Fairness", [Text("No fairness block in this task (or no fairness "
                                         "module).")], id="fairness")
    blocks: list[Block] = []
    summary_rows = _fair_summary_rows(models)
    if summary_rows:
        blocks += [Table(_FAIR_SUMMARY_HEADER, summary_rows, cls="fairness-summary"),
                   Text(_FAIR_NOTE, cls="note")]
    blocks += _fair_charts(models)
    tables = [
        ("Selection rate of the favourable outcome, by group",
         ["model", "group", "rate [95% CI]", "n"], _fair_selection_rows(models)),
        ("Accuracy by group (fairlearn MetricFrame)",
         ["model", "metric", "group", "value [95% CI]", "n", "gap [95% CI]"],
         _fair_group_accuracy_rows(models)),
        ("Training data audit beside the model",
         ["model", "data flagged", "outcome rate by group in the data", "test",
          "model selection rate by group"], _fair_audit_rows(models)),
    ]
    for title, header, rows in tables:
        if rows:
            blocks += [Heading(title), Table(header, rows)]
    for name, axis, ex in _fair_examples(models, limit=MAX_FLIPPED_EXAMPLES):
        blocks += [Heading(f"Flipped examples: {name}, axis {axis}"),
                   Table(["id", "prompt", "variant prompt", "answer", "variant answer"],
                         [[e.get("id"), e.get("prompt"), e.get("variant_prompt"),
                           show_output(e.get("output") or ""),
                           show_output(e.get("variant_output") or "")] for e in ex],
                         cls="flipped")]
    probes = _fair_probe_rows(models)
    if probes:
        blocks += [Heading("Stereotype probes by bias type"),
                   Table(["model", "bias type", "prefers stereotype", "pairs"], probes)]
    keys = sorted({k for m in models.values() for k in _fairness_keys(m)})
    rows = [[k, *(_flat_value(m["flat"].get(k)) for m in models.values())] for k in keys]
    blocks += [Heading("Fairness numbers as gates see them"), Table(["metric", *models], rows)]
    return Section("Fairness", blocks, id="fairness")


def _fair_charts(models: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    rates = {n: ((m["fairness"].get("groups") or {}).get("outcome") or {}).get("selection_rate")
             or {} for n, m in models.items()}
    if any(rates.values()):
        title = "favourable outcome: selection rate by group (95% CI)"
        out.append(Chart("group", title, charts.group_bars(title, rates)))
    # accuracy by group is charted once, in the per-group section; fairlearn's table stays
    axes = sorted({a for m in models.values()
                   for a in ((m["fairness"].get("counterfactual") or {}).get("axes") or {})})
    for axis in axes:
        items = []
        for n, m in models.items():
            a = ((m["fairness"].get("counterfactual") or {}).get("axes") or {}).get(axis)
            if a is not None:
                ci = a.get("flip_rate_ci") or [None, None]
                items.append((n, {"value": a.get("flip_rate"), "ci_low": ci[0],
                                  "ci_high": ci[1]}))
        title = f"counterfactual flip rate, axis {axis} (95% CI)"
        out.append(Chart("flip", title, charts.metric_chart(title, items)))
    stereo = [(n, {"value": s.get("preference"), "ci_low": (s.get("ci") or [None, None])[0],
                   "ci_high": (s.get("ci") or [None, None])[1]})
              for n, m in models.items() if (s := m["fairness"].get("stereotype"))]
    if stereo:
        title = "prefers the stereotype (ideal 0.5, 95% CI)"
        out.append(Chart("stereotype", title, charts.metric_chart(title, stereo)))
    return out


def _disagreement_section(results: dict[str, Any], predictions: list[dict[str, Any]]) -> Section:
    blocks: list[Block] = []
    for name, items in disagreements(results, predictions).items():
        blocks.append(Heading(f"base vs {name}"))
        if not items:
            blocks.append(Text("No disagreements."))
            continue
        blocks.append(Table(["id", "prompt", "target", "base", name],
                            [[d["id"], d["prompt"], d["target"], show_output(d["base"]),
                              show_output(d["tuned"])] for d in items], cls="disagreements"))
    return Section("Where base and tuned disagree", blocks, id="disagreements")


def _flat_value(v: Any) -> str:
    return _fmt(v) if isinstance(v, int | float) or v is None else str(v)


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
        test_text = (f"chi2 {_fmt(test.get('chi2'), 1)}, p {format_p(test.get('p_value'))}, "
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


# ----------------------------------------------------------------------------------- markdown
def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def verdict_markdown(found: list[Verdict]) -> str:
    """The verdict card as a Markdown list: the outcome in bold, then the evidence."""
    lines = []
    for v in found:
        clauses = [*v.evidence, *(f"warning: {w}" for w in v.warnings)]
        lines.append(f"- **{v.model} — {v.outcome}**" + (f": {'; '.join(clauses)}"
                                                         if clauses else ""))
    return "\n".join(lines)


def _md_block(b: Block) -> str:
    if isinstance(b, Text):
        return f"**{b.text}**" if b.cls in ("pass", "fail") else b.text
    if isinstance(b, Heading):
        return f"### {b.text}"
    if isinstance(b, Table):
        return _md_table(b.header, b.rows)
    if isinstance(b, VerdictCard):
        return verdict_markdown(b.verdicts)
    if isinstance(b, ModelWarning):
        return f"> **Warning**, `{b.model}`: {b.text}"
    return ""  # a chart: Markdown has no pictures, report.html has them


def _intro_at(report: Report) -> int:
    """The intro (base, rows, statistics) follows the verdict card, else the title."""
    return 1 if report.sections and report.sections[0].id == "verdict" else 0


def to_markdown(report: Report) -> str:
    """Lay a :class:`Report` out as Markdown."""
    parts = [f"# {report.title}", ""]
    for i, s in enumerate([*report.sections, None]):
        if i == _intro_at(report):
            parts += [report.intro, ""]
        if s is not None:
            parts += [f"## {s.title}", ""]
            parts += [t + "\n" for b in s.blocks if (t := _md_block(b))]
    return "\n".join(parts).rstrip() + "\n"


def render_markdown(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """The whole report as Markdown."""
    return to_markdown(build_report(results, predictions))


# ---------------------------------------------------------------------------------------- html
VERDICT_CSS = """
.verdict{border:2px solid #333;border-radius:8px;padding:.5em 1.2em;margin:.6em 0}
.verdict p{margin:.3em 0}.verdict ul{list-style:none;padding:0;margin:.3em 0}
.verdict li{margin:.45em 0;line-height:1.45}
.verdict .outcome{font-weight:bold;padding:1px 6px;border-radius:4px;color:#fff}
.verdict .ok .outcome{background:#2a7a2a}.verdict .no .outcome{background:#b00}
.verdict .look .outcome{background:#a66300}.verdict .warn{color:#a66300;font-weight:bold}
"""
"""The verdict card's style: in report.html and, inline, in the app."""
_CSS = VERDICT_CSS + """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.pass{color:#2a7a2a;font-weight:bold}.fail{color:#b00;font-weight:bold}
.note{color:#555;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:8px}.charts svg{border:1px solid #eee;max-width:100%;
height:auto}
@page{size:A4;margin:14mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:11px}
h2{break-after:avoid;page-break-after:avoid}h3{break-after:avoid;page-break-after:avoid}
table{font-size:9px;width:100%;table-layout:auto;word-break:break-word}
tr,svg,.verdict{break-inside:avoid;page-break-inside:avoid}
thead{display:table-header-group}.charts svg{border:none;max-width:48%}
a{color:inherit;text-decoration:none}
}
"""


def _html_cell(c: Any) -> str:
    text = str(c)
    cls = {"pass": ' class="pass"', "FAIL": ' class="fail"'}.get(text, "")
    return f"<td{cls}>{html.escape(text)}</td>"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict_html(found: list[Verdict], lead: str = "") -> str:
    """The verdict card as an HTML ``<div class="verdict">`` (the report and the app)."""
    items = []
    for v in found:
        cls = {True: "ok", False: "no"}.get(v.ok, "look")
        evidence = "; ".join(html.escape(e) for e in v.evidence)
        warns = "".join(f'; <span class="warn">warning: {html.escape(w)}</span>'
                        for w in v.warnings)
        items.append(f'<li class="{cls}"><b>{html.escape(v.model)}</b> — '
                     f'<span class="outcome">{html.escape(v.outcome)}</span>'
                     f"{': ' if evidence or warns else ''}{evidence}{warns}</li>")
    head = f"<p><b>{html.escape(lead)}</b></p>" if lead else ""
    # inline list style: host pages (the app) style lists with more specific rules
    return (f'<div class="verdict">{head}<ul style="list-style:none;padding-left:0">'
            f'{"".join(items)}</ul></div>')


def _html_blocks(blocks: list[Block]) -> str:
    out, pending = [], []
    for b in [*blocks, None]:
        if isinstance(b, Chart):
            if b.svg:
                pending.append(b.svg)
            continue
        if pending:  # consecutive charts share one flowing row
            out.append('<div class="charts">' + "".join(pending) + "</div>")
            pending = []
        if isinstance(b, Text):
            attr = f' class="{b.cls}"' if b.cls else ""
            out.append(f"<p{attr}>{html.escape(b.text)}</p>")
        elif isinstance(b, Heading):
            out.append(f"<h3>{html.escape(b.text)}</h3>")
        elif isinstance(b, Table):
            out.append(_html_table(b.header, b.rows, b.cls))
        elif isinstance(b, VerdictCard):
            out.append(verdict_html(b.verdicts))
        elif isinstance(b, ModelWarning):
            out.append(f'<p class="fail">Warning, <code>{html.escape(b.model)}</code>: '
                       f"{html.escape(b.text)}</p>")
    return "".join(out)


def to_html(report: Report) -> str:
    """Lay a :class:`Report` out as one self-contained HTML page."""
    esc = html.escape
    body = [f"<h1>{esc(report.title)}</h1>"]
    for i, s in enumerate([*report.sections, None]):
        if i == _intro_at(report):
            body.append(f'<p class="note">{esc(report.intro)}</p>')
        if s is not None:
            attr = f' id="{s.id}"' if s.id else ""
            body.append(f"<section{attr}><h2>{esc(s.title)}</h2>{_html_blocks(s.blocks)}"
                        "</section>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def render_html(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG only)."""
    return to_html(build_report(results, predictions))

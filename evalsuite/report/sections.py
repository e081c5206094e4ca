"""The report's general sections, one function each.

Metrics, paired comparisons, gates, per class, per group, overfitting, and the rows where base
and tuned disagree. Each takes ``results`` and returns a
:class:`~evalsuite.report.blocks.Section`, or None when it has nothing to show.
"""

from __future__ import annotations

from typing import Any

from evalsuite import charts
from evalsuite.gates import LOWER95, UPPER95, split_evidence
from evalsuite.report.blocks import (
    Block,
    Chart,
    Heading,
    Section,
    Table,
    Text,
    fmt,
    fmt_ci,
    show_output,
)
from evalsuite.verdict import format_p, gate_status

MAX_DISAGREEMENTS = 12


def _scorers(results: dict[str, Any]) -> list[str]:
    return [s["name"] for s in results["task"]["scorers"]]


def metrics_section(results: dict[str, Any]) -> Section:
    """Every scorer per model with its 95% CI, as a table and a chart each."""
    models, scorers = results["models"], _scorers(results)
    blocks: list[Block] = [Table(["model", *scorers],
                                 [[n, *(fmt_ci(m["metrics"][s]) for s in scorers)]
                                  for n, m in models.items()])]
    blocks += [Chart("metric", f"{s} (95% CI)",
                     charts.metric_chart(f"{s} (95% CI)",
                                         [(n, m["metrics"][s]) for n, m in models.items()]))
               for s in scorers]
    return Section("Metrics", blocks, id="metrics")


def comparisons_section(results: dict[str, Any]) -> Section | None:
    """The paired comparisons (b − a) with their CIs, raw and Holm-adjusted p-values."""
    found = results["comparisons"]
    if not found:
        return None
    rows = [[c["a"], c["b"], c["metric"],
             f"{fmt(c['delta'])} [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]",
             format_p(c["p_value"]), format_p(c.get("p_value_holm")), c["test"]]
            for c in found]
    note = Text(f"Holm-adjusted p-values correct for the {len(found)} comparisons of this run "
                "(statsmodels multipletests): read those, not the raw ones, before calling a "
                "difference significant.", cls="note")
    return Section("Paired comparisons (b − a)",
                   [note, Table(["a", "b", "metric", "delta [95% CI]", "p-value",
                                 "p (Holm)", "test"], rows)])


def gates_section(results: dict[str, Any]) -> Section | None:
    """Each gate per model: its state (with evidence, point only, fails), bound, and charts."""
    gated = [(n, m) for n, m in results["models"].items() if "gates" in m]
    if not gated:
        return None
    ok = results["gates"]["passed"]
    rows = [[n, g["gate"], fmt(g["value"]), _bound_cell(g), "pass" if g["passed"] else "FAIL",
             gate_status(g), g["reason"]]
            for n, m in gated for g in m["gates"]]
    blocks: list[Block] = [
        Text(f"Overall: {'all passed' if ok else 'FAILED'}", cls="pass" if ok else "fail"),
        Text("A gate passes with evidence when its 95% bound passes too (the upper bound for "
             "≤, the lower for ≥; a p-value's Holm-adjusted value); on the point estimate "
             "only, more held-out data is needed to tell.", cls="note"),
        Table(["model", "gate", "value", "bound read", "result", "state", "why"], rows)]
    for text in dict.fromkeys(g["gate"] for _, m in gated for g in m["gates"]):
        items, threshold = [], 0.0
        for n, m in gated:
            g = next((x for x in m["gates"] if x["gate"] == text), None)
            if g is None:
                continue
            threshold = g["threshold"]
            point = split_evidence(g["key"])[0]
            flat = m.get("flat") or {}
            items.append((n, {"value": flat.get(point, g["value"]),
                              "lower": flat.get(point + LOWER95),
                              "upper": flat.get(point + UPPER95),
                              "bound": g.get("evidence_value"), "status": gate_status(g)}))
        if any(i["lower"] is not None or i["bound"] is not None for _, i in items):
            blocks.append(Chart("gate", f"gate: {text}",
                                charts.gate_chart(text, threshold, items)))
    return Section("Gates", blocks, id="gates")


def _bound_cell(g: dict[str, Any]) -> str:
    key, value = g.get("evidence_key"), g.get("evidence_value")
    return "–" if key is None else f"{key.rsplit('.', 1)[-1]} {fmt(value)}"


def label_details_section(results: dict[str, Any]) -> Section | None:
    """Per-class precision / recall / F1 and confusion matrices of label scorers."""
    blocks: list[Block] = []
    for s in results["task"]["scorers"]:
        if s["type"] != "label":
            continue
        blocks.append(Heading(f"{s['name']}: per-class precision / recall / F1"))
        rows = []
        for name, m in results["models"].items():
            metric = m["metrics"][s["name"]]
            for label, v in metric.get("per_class", {}).items():
                rows.append([name, label, fmt(v["precision"]), fmt(v["recall"]),
                             fmt(v["f1"]), v["support"]])
            rows.append([name, "macro F1", "", "", fmt(metric.get("macro_f1")), ""])
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


def per_group_section(results: dict[str, Any]) -> Section | None:
    """Each scorer by group (95% CI), as charts and one table."""
    models, scorers = results["models"], _scorers(results)
    rows = [[n, s, g, fmt_ci(v), v["n"]] for n, m in models.items() for s in scorers
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


def overfitting_section(results: dict[str, Any]) -> Section | None:
    """The overfitting check and training curves of each adapter."""
    over = [(n, m["overfitting"]) for n, m in results["models"].items() if "overfitting" in m]
    if not over:
        return None
    blocks: list[Block] = [Text(f"{n}: {'FLAGGED — ' if o['flagged'] else ''}{o['reason']}",
                                cls="fail" if o["flagged"] else "") for n, o in over]
    blocks += [Chart("curves", f"{n}: loss",
                     charts.loss_curves(f"{n}: loss", {"train": o["train"], "held-out": o["eval"]}))
               for n, o in over]
    return Section("Overfitting check and training curves", blocks, id="curves")


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


def disagreement_section(results: dict[str, Any], predictions: list[dict[str, Any]]) -> Section:
    """The rows where base and each adapter disagree (:func:`disagreements`)."""
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

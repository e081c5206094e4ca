"""The report's fairness section.

Summary, charts with 95% CIs, groups, the data audit beside the model, flipped examples,
probes, and every fairness number under the key a gate uses.
"""

from __future__ import annotations

from typing import Any

from evalsuite import charts
from evalsuite.report.blocks import Block, Chart, Heading, Section, Table, Text, fmt, show_output
from evalsuite.report.fairness_measures import measure_blocks
from evalsuite.verdict import format_p

MAX_FLIPPED_EXAMPLES = 10

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
         ["model", "metric", "group", "value [95% CI]", "n", "gap [95% CI]", "gap p"],
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
    blocks += measure_blocks(models)
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


def _flat_value(v: Any) -> str:
    return fmt(v) if isinstance(v, int | float) or v is None else str(v)


_FAIR_SUMMARY_HEADER = ["model", "DPD", "DP ratio", "4/5 rule", "equalized odds diff",
                        "flip rate [95% CI]", "similarity", "worst-case acc", "group acc gap",
                        "stereotype [95% CI]"]


def _fair_range(value: Any, ci: Any) -> str:
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"
    return fmt(value)


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
            name, fmt(outcome.get("demographic_parity_difference")),
            fmt(outcome.get("demographic_parity_ratio")),
            "–" if four is None else ("pass" if four else "FAIL"),
            fmt(outcome.get("equalized_odds_difference")),
            _fair_range(worst_axis.get("flip_rate"), worst_axis.get("flip_rate_ci")),
            fmt(flat.get("counterfactual.similarity")),
            fmt(flat.get("counterfactual.worst_case_accuracy")),
            fmt(flat.get("group_accuracy_gap")),
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
                             v.get("n"), _fair_range(a.get("gap"), a.get("gap_ci")),
                             format_p(a.get("gap_p_value"))])
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
            shown = ", ".join(f"{k} {fmt(r, 2)}" for k, r in (v.get("rates") or {}).items()
                              if k != "(no match)")
            data_rates.append(f"{g}: {shown}")
        test = bias.get("test") or {}
        axis = f"{bias['axis']}: " if bias.get("axis") else ""
        test_text = (f"{axis}chi2 {fmt(test.get('chi2'), 1)}, p {format_p(test.get('p_value'))}, "
                     f"Cramér's V {fmt(test.get('cramers_v'), 2)}") if test else "–"
        outcome = (m["fairness"].get("groups") or {}).get("outcome") or {}
        model_rates = "; ".join(f"{g}: {fmt(v.get('value'), 2)}"
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
            rows.append([name, t, fmt(v.get("preference")), v.get("n")])
    return rows


def _fairness_keys(model: dict[str, Any]) -> list[str]:
    metric_names = set(model["metrics"])
    return [k for k in model.get("flat", {}) if k.split(".")[0] not in metric_names]

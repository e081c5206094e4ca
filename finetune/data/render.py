"""Renderings of a validation report: the terminal summary and ``report.md``.

Both walk the same tables (:func:`sections`), so they cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.data.pii import KINDS as PII_KINDS
from finetune.data.report import ValidationReport
from finetune.errors import UsageError


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)]


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def _bias_tables(bias: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    outcomes = bias.get("outcomes") or []
    headers = ["group", "rows", "share", *[f"rate {o}" for o in outcomes]]
    rows = []
    for g, rep in bias["representation"].items():
        rates = (bias.get("outcome_rates") or {}).get(g)
        rows.append([
            g, rep["rows"], f"{rep['share']:.2f}",
            *[f"{rates['rates'][o]:.2f}" if rates else "-" for o in outcomes],
        ])
    return headers, rows


def _axes_table(bias: dict[str, Any]) -> tuple[str, list[str], list[list[Any]]]:
    """One row per audited axis: who is known, the test, its Holm-adjusted p, the effect."""
    rows = []
    for axis, r in bias["axes"].items():
        t = r.get("test")
        known = ", ".join(f"{g} {v['rows']}" for g, v in r["representation"].items()
                          if g != "(unknown)") or "-"
        rows.append([
            axis, known,
            "-" if t is None else ("Fisher exact" if t["method"] == "fisher" else
                                   f"chi2 {t['chi2']:.1f}" + (" (weak)" if t["weak"] else "")),
            "-" if t is None else f"{t['p_value']:.3g}",
            "-" if t is None or "p_holm" not in t else f"{t['p_holm']:.3g}",
            "-" if t is None else f"{t['cramers_v']:.3f}",
            "-" if t is None else f"{r['max_rate_gap']:.2f} ({r['max_rate_gap_outcome']})",
            "YES" if r["flagged"] else "no",
        ])
    title = "Bias audit by axis (p-values Holm-adjusted across axes)" \
        if bias.get("correction") == "holm" else "Bias audit by axis"
    return (title, ["axis", "known rows", "test", "p", "Holm p", "Cramér's V",
                    "largest rate gap", "flagged"], rows)


def _discovery_table(discovered: dict[str, Any]) -> tuple[str, list[str], list[list[Any]]]:
    """Words of the answers that depend on a group, strongest first."""
    rows = [[c["axis"], c["word"], ", ".join(f"{g} {v:.2f}" for g, v in c["rates"].items()),
             f"{c['q_value']:.2g}", f"{c['cramers_v']:.3f}"] for c in discovered["found"]]
    return (f"Outcome discovery ({discovered['n_found']} of {discovered['tests']} word x axis "
            f"tests at FDR q < {discovered['q']:g}, Benjamini-Hochberg)",
            ["axis", "word", "share of answers by group", "q", "Cramér's V"], rows)


def sections(report: ValidationReport) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) tables shared by the terminal and Markdown renderings."""
    out: list[tuple[str, list[str], list[list[Any]]]] = []
    out.append(("Rows", ["rows", "valid", "errors", "warnings", "formats"], [[
        report.n_rows, report.n_valid, report.n_errors, report.n_warnings,
        ", ".join(f"{k} {v}" for k, v in report.formats.items()) or "-"]]))
    t = report.tokens
    if t:
        out.append(("Tokens", ["p50", "p95", "max", "max_seq_len", "over max", "zero trainable",
                               "trainable total"],
                    [[f"{t['p50']:.0f}", f"{t['p95']:.0f}", t["max"], t["max_seq_len"],
                      t["over_max_seq_len"], t["zero_trainable"], t["trainable_total"]]]))
    d = report.duplicates
    out.append(("Duplicates", ["exact rows", "near clusters", "near rows", "conflicts"],
                [[d["exact_rows"], d["near_clusters"], d["near_rows"], d["conflicts"]]]))
    if report.leakage:
        lk = report.leakage
        out.append(("Leakage", ["held-out rows", "exact", "near"],
                    [[lk["heldout_rows"], lk["exact"], lk["near"]]]))
    out.append(("PII", list(PII_KINDS), [[report.pii["counts"][k] for k in PII_KINDS]]))
    if report.bias:
        b = report.bias
        headers, rows = _bias_tables(b)
        title = (f"Bias audit (group: {b['group_source']}; outcome: {b['outcome_source'] or '-'}"
                 + (f"; axis shown: {b['axis']}" if b.get("axes") else "") + ")")
        out.append((title, headers, rows))
        if b.get("test"):
            tt = b["test"]
            out.append(("Association test", ["chi2", "dof", "p", "Cramér's V", "flagged"],
                        [[f"{tt['chi2']:.2f}", tt["dof"], f"{tt['p_value']:.3g}",
                          f"{tt['cramers_v']:.3f}", "YES" if b["association_flagged"] else "no"]]))
        if b.get("axes"):
            out.append(_axes_table(b))
        if (b.get("discovered") or {}).get("found"):
            out.append(_discovery_table(b["discovered"]))
    if report.labels:
        lb = report.labels
        out.append((f"Labels ({lb['field']})", ["label", "rows"],
                    [[k, v] for k, v in lb["counts"].items()]))
    if report.preflight:
        p = report.preflight
        out.append(("Pre-flight", ["epochs", "trainable tokens", "trainable x epochs",
                                   "tokens x epochs"],
                    [[p["epochs"], p["trainable_tokens"], p["trainable_tokens_x_epochs"],
                      p["tokens_x_epochs"]]]))
    return out


def render_text(report: ValidationReport) -> str:
    """The terminal summary: tables, then the findings with examples."""
    lines = [f"validate {report.data}" + (f" (held-out {report.heldout})" if report.heldout
                                            else "")]
    for title, headers, rows in sections(report):
        lines += ["", title, *_table(headers, rows)]
    if report.bias and not report.bias["outcome_source"]:
        found = (report.bias.get("discovered") or {}).get("found")
        lines += ["(no outcome given: the words above were found to depend on a group; audit "
                  "one with --outcome-pattern REGEX or --label-field FIELD)" if found else
                  "(no outcome given and none found: pass --outcome-pattern REGEX, e.g. a word "
                  "of the answer such as premium, or --label-field FIELD)"]
    lines += ["", "Findings" if report.findings else "Findings: none"]
    for f in report.findings:
        lines.append(f"  {f.severity.upper():7} {f.check}: {f.message}")
        lines += [f"           e.g. {e}" for e in f.examples[:3]]
    return "\n".join(lines) + "\n"


def render_markdown(report: ValidationReport) -> str:
    """report.md: the same tables and every finding with its examples."""
    lines = [f"# Data report: `{report.data}`", ""]
    if report.heldout:
        lines += [f"Held-out: `{report.heldout}`", ""]
    for title, headers, rows in sections(report):
        lines += [f"## {title}", "", *_md_table(headers, rows), ""]
    lines += ["## Findings", ""]
    if not report.findings:
        lines.append("None.")
    for f in report.findings:
        lines.append(f"- **{f.severity}** `{f.check}`: {f.message}")
        lines += [f"  - `{e}`" for e in f.examples]
    if report.row_errors:
        lines += ["", "## Row errors", ""]
        lines += [f"- `{e['message']}`" for e in report.row_errors[:200]]
        if len(report.row_errors) > 200:
            lines.append(f"- ... and {len(report.row_errors) - 200} more (see report.json)")
    return "\n".join(lines) + "\n"


def write_report(report: ValidationReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.md into ``out_dir`` atomically."""
    from finetune.artifacts import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--report {out}: exists and is not a folder")
    return (atomic_write_json(out / "report.json", report.to_dict()),
            atomic_write_text(out / "report.md", render_markdown(report)))



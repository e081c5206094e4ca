"""``finetune validate``: check training data before a single step runs.

Checks (each reported with counts and example rows):

1. Format: every row must normalise to chat messages (``formats.to_messages``); a row that does
   not is reported as ``file:line: field: problem``; a file mixing formats (chat and
   prompt/completion rows) is a warning naming the lines of the minority format.
2. Tokens: lengths with the base's tokenizer and chat template (p50 / p95 / max), rows longer
   than ``max_seq_len`` (truncated), rows left with zero trainable tokens after truncation.
3. Duplicates: exact (normalised text hash), near (MinHash LSH, ``dedup.py``), conflicts (one
   prompt, several answers).
4. Leakage: held-out rows whose prompt appears in train, exactly or nearly.
5. PII: e-mail addresses, phone numbers, Luhn-checked card numbers (``pii.py``).
6. Bias audit: group (``--group-field``, or inferred by THE lexicon on every axis it knows,
   ``--axes`` / ``--axes-file``) x outcome (``--outcome-pattern`` on the answer, else a label
   field): representation, outcome rates, chi-square or Fisher and Cramér's V, Holm across
   axes (``audit.py``, ``bias.py``); without an outcome, the words of the answers that depend
   on a group (``discover.py``).
7. Label balance when a label field exists; a pre-flight estimate of tokens x epochs.

Severity. Errors are findings that make training wrong or impossible, so ``validate`` exits 1
on them: rows that cannot be parsed (format), rows with zero trainable tokens after truncation
(they would train on nothing, or on a cut-off answer), and held-out prompts that appear exactly
in train (every held-out score would be inflated). Everything else is a warning, which exits 1
only with ``--strict``: over-long rows (truncated but trainable), exact and near duplicates,
conflicts, mixed formats, near leakage, PII, a flagged bias association or representation gap, label
imbalance, and an outcome pattern that never matches. Near duplicates are a warning because
templated data (such as the demo) legitimately has thousands. Unreadable input (missing file,
empty file, unknown extension) and bad options exit 2.

``ValidationReport.n_errors`` counts rows in error findings; ``n_warnings`` counts warning
findings (checks that fired). The checks themselves are units in ``finetune.data.checks``
(listed once in ``CHECKS``); the renderings are in ``finetune.data.render``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune.data.audit import AuditThresholds, OutcomeRule
from finetune.data.checks import CHECKS
from finetune.data.findings import Context, Finding, Parsed, row_error
from finetune.data.formats import RowError, detect_format, iter_rows
from finetune.data.formats import to_messages as _to_messages
from finetune.data.pii import redact_value
from finetune.data.render import render_markdown, render_text, write_report
from finetune.data.report import ValidationReport
from finetune.errors import UsageError

__all__ = ["Finding", "ValidationReport", "render_markdown", "render_text", "validate",
           "write_report"]

DEFAULT_LABEL_FIELD = "label"


# ---------------------------------------------------------------------------------------------
# Reading and running the checks


def _read(path: str | Path, progress: bool, desc: str) -> tuple[list[Parsed], list[dict], int]:
    from tqdm import tqdm

    parsed: list[Parsed] = []
    errors: list[dict[str, Any]] = []
    n = 0
    bar = tqdm(iter_rows(path), desc=desc, unit=" rows", disable=None if progress else True,
               leave=False, mininterval=0.5, file=sys.stderr)
    for row in bar:
        n += 1
        problems = list(row.problems)
        if row.data is not None and not problems:
            try:
                messages = _to_messages(row.data)
            except RowError as err:
                problems.append((err.field, err.problem))
            else:
                fmt = detect_format(row.data) or "chat"
                parsed.append(Parsed(row.line, row.data, messages, fmt))
                continue
        errors.extend(row_error(str(path), row.line, f, p) for f, p in problems)
    return parsed, errors, n


def validate(
    data: str | Path,
    *,
    heldout: str | Path | None = None,
    base: str | None = "tiny",
    tokenizer: Any = None,
    max_seq_len: int | None = None,
    group_field: str | None = None,
    outcome_pattern: str | None = None,
    near_dup_threshold: float = 0.85,
    progress: bool = False,
    label_field: str | None = None,
    epochs: float = 1.0,
    thresholds: AuditThresholds | None = None,
    max_label_ratio: float = 5.0,
    axes: Sequence[str] | None = None,
    axes_file: str | Path | None = None,
) -> ValidationReport:
    """Run every check on a data file and return the report.

    Args:
        data: JSONL / CSV / Parquet file or hub dataset id.
        heldout: Optional held-out file, checked for format and for leakage into ``data``.
        base: Base whose tokenizer and chat template count tokens; None skips token checks.
        tokenizer: An already loaded tokenizer (wins over ``base``).
        max_seq_len: Truncation length; default the tokenizer's ``model_max_length``.
        group_field: Row field holding the group; default: inferred by THE lexicon.
        outcome_pattern: Regex on the final answer giving the outcome; default: the label field.
        near_dup_threshold: Estimated Jaccard at or above which rows are near duplicates.
        progress: Show progress bars on a terminal.
        label_field: Label column; default ``label`` when rows have it. Named explicitly, it
            must exist.
        epochs: For the pre-flight estimate.
        thresholds: When the bias audit flags.
        max_label_ratio: Largest / smallest label count above which labels are imbalanced.
        axes: Axes the bias audit infers groups on (default every axis the lexicon knows but
            ``name``).
        axes_file: A user's ``axes.yaml``, registered before the audit (its axes join).

    Raises:
        InputError: unreadable input (exit 2).
        UsageError: bad option values (exit 2).
    """
    _check_options(near_dup_threshold, max_seq_len, epochs, outcome_pattern)
    axes = _use_axes(axes, axes_file)
    path = str(data)
    watch = _Stopwatch()
    rows, read_errors, n_rows = _read(data, progress, "reading")
    # Bad options and an unreadable held-out file fail before the slow checks run.
    _check_fields(rows, path, group_field, label_field)
    ctx = Context(
        path, rows, read_errors, group_field=group_field, outcome_pattern=outcome_pattern,
        max_seq_len=max_seq_len, near_dup_threshold=near_dup_threshold, epochs=epochs,
        thresholds=thresholds or AuditThresholds(), max_label_ratio=max_label_ratio,
        progress=progress, tokenizer=tokenizer, axes=list(axes) if axes else None,
        label_field=label_field or (
            DEFAULT_LABEL_FIELD if any(DEFAULT_LABEL_FIELD in r.data for r in rows) else None),
    )
    if heldout is not None:
        ctx.heldout = str(heldout)
        ctx.held, ctx.held_errors, _ = _read(heldout, progress, "reading held-out")
    watch.lap("read")
    if ctx.tokenizer is None and base is not None:
        from finetune.models import load_tokenizer

        ctx.tokenizer = load_tokenizer(base)
        watch.lap("load_tokenizer")
    findings, row_errors = _run_checks(ctx, watch)
    row_errors.sort(key=lambda e: (e["file"] != path, e["file"], e["line"]))
    return _report(ctx, base, n_rows, findings, row_errors, watch.timings)


def _use_axes(axes: Sequence[str] | None, axes_file: str | Path | None) -> Sequence[str] | None:
    """Register a user's axes file; the axes to audit (an unknown one fails here, early)."""
    if axes_file is not None:
        from finetune.data.axes import use_axes_file

        use_axes_file(axes_file)
    if axes:
        from finetune.data.bias import audited_axes

        axes = audited_axes(axes)  # an unknown axis fails before the slow checks
    return axes


def _check_fields(rows: list[Parsed], path: str, group_field: str | None,
                  label_field: str | None) -> None:
    """A named group or label field must exist in some row."""
    for option, name in (("--group-field", group_field), ("--label-field", label_field)):
        if name is not None and rows and not any(name in r.data for r in rows):
            raise UsageError(f"{option} {name}: no row of {path} has this field")


class _Stopwatch:
    """Seconds per stage, added up: each lap counts from the previous one."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(self.timings.get(stage, 0.0) + now - self.clock, 4)
        self.clock = now


def _run_checks(ctx: Context, watch: _Stopwatch) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Run :data:`CHECKS` in order, each timed; their findings and row errors."""
    findings: list[Finding] = []
    row_errors: list[dict[str, Any]] = []
    for check in CHECKS:
        result = check.run(ctx)
        if result is None:
            watch.clock = time.perf_counter()  # a check that does not apply is not timed
            continue
        if result.section is not None:
            ctx.sections[result.section] = result.data
        findings += result.findings
        row_errors += result.row_errors
        watch.lap(check.stage or check.name)
    return findings, row_errors


def _check_options(near_dup_threshold: float, max_seq_len: int | None, epochs: float,
                   outcome_pattern: str | None) -> None:
    """Bad option values fail before any work."""
    if not 0.0 < near_dup_threshold <= 1.0:
        raise UsageError(f"--near-dup-threshold: must be in (0, 1], got {near_dup_threshold}")
    if max_seq_len is not None and max_seq_len < 1:
        raise UsageError(f"--max-seq-len: must be >= 1, got {max_seq_len}")
    if epochs <= 0:
        raise UsageError(f"--epochs: must be > 0, got {epochs}")
    OutcomeRule(outcome_pattern)  # compiles the regex


def _report(ctx: Context, base: str | None, n_rows: int, findings: list[Finding],
            row_errors: list[dict[str, Any]], timings: dict[str, float]) -> ValidationReport:
    s, tokens = ctx.sections, ctx.sections.get("tokens")
    return ValidationReport(
        data=ctx.path,
        heldout=ctx.heldout,
        n_rows=n_rows,
        n_valid=len(ctx.rows),
        formats=dict(Counter(r.fmt for r in ctx.rows)),
        row_errors=row_errors,
        tokens=tokens,
        duplicates=s["duplicates"],
        leakage=s.get("leakage"),
        pii=s["pii"],
        bias=s.get("bias"),
        labels=s.get("labels"),
        preflight=s.get("preflight"),
        findings=findings,
        settings={
            "base": base,
            "tokenizer": getattr(ctx.tokenizer, "name_or_path", None) if ctx.tokenizer else None,
            "max_seq_len": tokens["max_seq_len"] if tokens else ctx.max_seq_len,
            "group_field": ctx.group_field,
            "axes": ctx.axes,
            "outcome_pattern": ctx.outcome_pattern,
            "label_field": ctx.label_field,
            "near_dup_threshold": ctx.near_dup_threshold,
            "epochs": ctx.epochs,
            "alpha": ctx.thresholds.alpha,
            "min_cramers_v": ctx.thresholds.min_cramers_v,
            "min_group_ratio": ctx.thresholds.min_group_ratio,
            "max_label_ratio": ctx.max_label_ratio,
        },
        timings=timings,
    )


def redact_file(src: str | Path, out: str | Path) -> dict[str, int]:
    """Write a copy of ``src`` as JSONL with personal data replaced by placeholders.

    Rows that cannot be parsed are left out (``validate`` reports them).

    Returns:
        ``rows`` written and ``skipped``.
    """
    from finetune.artifacts import atomic_write_text

    if Path(out).suffix.lower() not in (".jsonl", ".ndjson"):
        raise UsageError(f"--redact {out}: the redacted copy is written as JSONL; name it .jsonl")
    lines = []
    skipped = 0
    for row in iter_rows(src):
        if row.data is None:
            skipped += 1
            continue
        lines.append(json.dumps(redact_value(row.data), ensure_ascii=False) + "\n")
    atomic_write_text(out, "".join(lines))
    return {"rows": len(lines), "skipped": skipped}


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``finetune validate``."""
    parser.add_argument("data", help="JSONL, CSV or Parquet file, or a hub dataset id")
    parser.add_argument("--heldout", help="held-out file: format and leakage into DATA")
    parser.add_argument("--base", default="tiny",
                        help="base whose tokenizer and chat template count tokens "
                             "(default tiny; 'none' skips token checks)")
    parser.add_argument("--max-seq-len", type=int, help="truncation length (default: the "
                        "tokenizer's model_max_length)")
    parser.add_argument("--group-field", help="row field holding the group (default: inferred "
                        "from the prompt with the demographic lexicon)")
    parser.add_argument("--axes", help="axes the bias audit infers groups on, comma-separated "
                        "(default: every axis the lexicon knows: gender, race, age, religion "
                        "and those of --axes-file)")
    parser.add_argument("--axes-file", metavar="YAML", help="your own axes (axes.yaml: groups, "
                        "term sets, names); see docs/fairness.md")
    parser.add_argument("--outcome-pattern", help="regex on the answer giving the outcome, "
                        "e.g. premium (a capture group gives categories); default: label field")
    parser.add_argument("--label-field", help="label column (default: 'label' when present)")
    parser.add_argument("--near-dup-threshold", type=float, default=0.85,
                        help="estimated Jaccard for near duplicates and leakage (default 0.85)")
    parser.add_argument("--alpha", type=float, default=0.01,
                        help="significance level of the bias test (default 0.01)")
    parser.add_argument("--min-cramers-v", type=float, default=0.2,
                        help="Cramér's V from which an association is large (default 0.2)")
    parser.add_argument("--min-group-ratio", type=float, default=0.5,
                        help="flag a group smaller than this share of the largest (default 0.5)")
    parser.add_argument("--max-label-ratio", type=float, default=5.0,
                        help="flag labels whose largest/smallest count exceeds this (default 5)")
    parser.add_argument("--epochs", type=float, default=1.0,
                        help="epochs for the pre-flight token estimate (default 1)")
    parser.add_argument("--report", metavar="DIR", help="write report.json and report.md here")
    parser.add_argument("--redact", metavar="OUT", help="write a PII-redacted copy (JSONL)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--show-errors", type=int, default=20, metavar="N",
                        help="row errors printed (default 20; all are in the report)")


def run(args: argparse.Namespace) -> int:
    """Run ``finetune validate``; returns the exit code."""
    base = None if str(args.base).lower() == "none" else args.base
    report = validate(
        args.data,
        heldout=args.heldout,
        base=base,
        max_seq_len=args.max_seq_len,
        group_field=args.group_field,
        outcome_pattern=args.outcome_pattern,
        near_dup_threshold=args.near_dup_threshold,
        progress=True,
        label_field=args.label_field,
        epochs=args.epochs,
        thresholds=AuditThresholds(args.alpha, args.min_cramers_v, args.min_group_ratio),
        max_label_ratio=args.max_label_ratio,
        axes=[a.strip() for a in args.axes.split(",") if a.strip()] if args.axes else None,
        axes_file=args.axes_file,
    )
    sys.stdout.write(render_text(report))
    if args.report:
        json_path, md_path = write_report(report, args.report)
        print(f"\nreport: {json_path} and {md_path}")
    if args.redact:
        counts = redact_file(args.data, args.redact)
        print(f"redacted copy: {args.redact} ({counts['rows']} rows, {counts['skipped']} "
              "unparseable rows left out)")
    shown = report.row_errors[: max(args.show_errors, 0)]
    for err in shown:
        print(err["message"], file=sys.stderr)
    if len(report.row_errors) > len(shown):
        print(f"... and {len(report.row_errors) - len(shown)} more row errors",
              file=sys.stderr)
    code = report.exit_code(args.strict)
    verdict = {0: "ok", 1: "FAILED"}[code]
    why = (f"{report.n_errors} errors, {report.n_warnings} warnings"
           + (" (--strict)" if args.strict and not report.n_errors and code else ""))
    print(f"\n{verdict}: {why}")
    return code

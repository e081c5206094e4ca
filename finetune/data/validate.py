"""``finetune validate``: check training data before a single step runs.

Checks (each reported with counts and example rows):

1. Format: every row must normalise to chat messages (``formats.to_messages``); a row that does
   not is reported as ``file:line: field: problem``.
2. Tokens: lengths with the base's tokenizer and chat template (p50 / p95 / max), rows longer
   than ``max_seq_len`` (truncated), rows left with zero trainable tokens after truncation.
3. Duplicates: exact (normalised text hash), near (MinHash LSH, ``dedup.py``), conflicts (one
   prompt, several answers).
4. Leakage: held-out rows whose prompt appears in train, exactly or nearly.
5. PII: e-mail addresses, phone numbers, Luhn-checked card numbers (``pii.py``).
6. Bias audit: group (``--group-field`` or inferred by THE lexicon) x outcome
   (``--outcome-pattern`` on the answer, else a label field): representation, outcome rates,
   chi-square and Cramér's V (``audit.py``).
7. Label balance when a label field exists; a pre-flight estimate of tokens x epochs.

Severity. Errors are findings that make training wrong or impossible, so ``validate`` exits 1
on them: rows that cannot be parsed (format), rows with zero trainable tokens after truncation
(they would train on nothing, or on a cut-off answer), and held-out prompts that appear exactly
in train (every held-out score would be inflated). Everything else is a warning, which exits 1
only with ``--strict``: over-long rows (truncated but trainable), exact and near duplicates,
conflicts, near leakage, PII, a flagged bias association or representation gap, label
imbalance, and an outcome pattern that never matches. Near duplicates are a warning because
templated data (such as the demo) legitimately has thousands. Unreadable input (missing file,
empty file, unknown extension) and bad options exit 2.

``ValidationReport.n_errors`` counts rows in error findings; ``n_warnings`` counts warning
findings (checks that fired).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from finetune.data import dedup
from finetune.data.audit import AuditThresholds, OutcomeRule, audit, row_group
from finetune.data.formats import RowError, detect_format, encode_batch, iter_rows, split_prompt
from finetune.data.formats import to_messages as _to_messages
from finetune.data.pii import KINDS as PII_KINDS
from finetune.data.pii import find_pii, redact_value
from finetune.errors import UsageError, where

MAX_EXAMPLES = 5
TOKEN_CHUNK = 2048
DEFAULT_LABEL_FIELD = "label"


@dataclass
class Finding:
    """One check that fired: what, how bad, how many, and where to look."""

    check: str
    severity: str
    """``error`` or ``warning``."""
    message: str
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class _Parsed:
    line: int
    data: dict[str, Any]
    messages: list[dict[str, str]]
    fmt: str

    @cached_property
    def prompt_messages(self) -> list[dict[str, str]]:
        return split_prompt(self.messages)[0]

    @cached_property
    def answer(self) -> str:
        return split_prompt(self.messages)[1]


@dataclass
class ValidationReport:
    """Everything ``validate`` found. ``to_dict()`` is the full report.json."""

    data: str
    heldout: str | None
    n_rows: int
    n_valid: int
    formats: dict[str, int]
    row_errors: list[dict[str, Any]]
    tokens: dict[str, Any] | None
    duplicates: dict[str, Any]
    leakage: dict[str, Any] | None
    pii: dict[str, Any]
    bias: dict[str, Any] | None
    labels: dict[str, Any] | None
    preflight: dict[str, Any] | None
    findings: list[Finding]
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: read, tokens, duplicates, leakage, pii, audit."""
    n_errors: int = 0
    n_warnings: int = 0

    def __post_init__(self) -> None:
        self.n_errors = sum(f.count for f in self.findings if f.severity == "error")
        self.n_warnings = sum(1 for f in self.findings if f.severity == "warning")

    def exit_code(self, strict: bool = False) -> int:
        """0 clean, 1 errors (or warnings when ``strict``)."""
        return 1 if self.n_errors or (strict and self.n_warnings) else 0

    def to_dict(self) -> dict[str, Any]:
        """The full report, JSON-able."""
        out = asdict(self)
        out["findings"] = [asdict(f) for f in self.findings]
        return out

    def summary(self) -> dict[str, Any]:
        """A short version for run.json: counts, token stats, the findings' one-liners."""
        tokens = self.tokens or {}
        return {
            "data": self.data,
            "rows": self.n_rows,
            "valid_rows": self.n_valid,
            "errors": self.n_errors,
            "warnings": self.n_warnings,
            "tokens": {k: tokens.get(k) for k in (
                "p50", "p95", "max", "max_seq_len", "over_max_seq_len", "zero_trainable",
                "trainable_total")} if tokens else None,
            "duplicates": {k: self.duplicates.get(k) for k in (
                "exact_rows", "near_clusters", "near_rows", "conflicts")},
            "leakage": {k: self.leakage.get(k) for k in ("exact", "near")}
            if self.leakage else None,
            "pii": self.pii.get("counts"),
            "bias": {
                "flagged": self.bias.get("flagged"),
                "group_source": self.bias.get("group_source"),
                "outcome_source": self.bias.get("outcome_source"),
                "test": self.bias.get("test"),
                "reasons": self.bias.get("reasons"),
            } if self.bias else None,
            "findings": [f"{f.severity}: {f.check}: {f.message}" for f in self.findings],
        }


# ---------------------------------------------------------------------------------------------
# Reading


def _read(path: str | Path, progress: bool, desc: str) -> tuple[list[_Parsed], list[dict], int]:
    from tqdm import tqdm

    parsed: list[_Parsed] = []
    errors: list[dict[str, Any]] = []
    n = 0
    rows = iter_rows(path)
    bar = tqdm(rows, desc=desc, unit=" rows", disable=None if progress else True,
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
                parsed.append(_Parsed(row.line, row.data, messages, fmt))
                continue
        for field_name, problem in problems:
            errors.append({
                "file": str(path), "line": row.line, "field": field_name, "problem": problem,
                "message": where(path, row.line, field_name, problem),
            })
    return parsed, errors, n


def _prompt_text(row: _Parsed, *, system: bool) -> str:
    return "\n".join(
        f"{m['role']}: {m['content']}" for m in row.prompt_messages
        if system or m["role"] != "system"
    )


def _body_text(row: _Parsed) -> str:
    return "\n".join(m["content"] for m in row.messages if m["role"] != "system")


def _loc(path: str | Path, lines: list[int], limit: int = MAX_EXAMPLES) -> list[str]:
    return [f"{path}:{line}" for line in lines[:limit]]


def _cluster_examples(path: str | Path, clusters: list[list[int]]) -> list[str]:
    out = []
    for lines in clusters[:MAX_EXAMPLES]:
        shown = ", ".join(str(x) for x in lines[:4])
        more = f" (+{len(lines) - 4} more)" if len(lines) > 4 else ""
        out.append(f"{path}: lines {shown}{more}")
    return out


# ---------------------------------------------------------------------------------------------
# Checks


def _token_stats(
    rows: list[_Parsed], tokenizer: Any, max_seq_len: int | None, progress: bool, path: str
) -> tuple[dict[str, Any], list[Finding], list[dict[str, Any]]]:
    from tqdm import tqdm

    if max_seq_len is None:
        limit = getattr(tokenizer, "model_max_length", None)
        max_seq_len = int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None
    stats: list[dict[str, int]] = []
    bar = tqdm(total=len(rows), desc="tokens", unit=" rows", disable=None if progress else True,
               leave=False, mininterval=0.5, file=sys.stderr)
    for start in range(0, len(rows), TOKEN_CHUNK):
        chunk = rows[start : start + TOKEN_CHUNK]
        stats.extend(encode_batch(tokenizer, [r.messages for r in chunk], max_seq_len))
        bar.update(len(chunk))
    bar.close()
    lengths = np.array([s["length"] for s in stats] or [0])
    trainable = np.array([s["n_trainable"] for s in stats] or [0])
    over = [r.line for r, s in zip(rows, stats, strict=True)
            if max_seq_len is not None and s["length"] > max_seq_len]
    zero = [(r, s) for r, s in zip(rows, stats, strict=True) if s["n_trainable"] == 0]
    kept = np.minimum(lengths, max_seq_len) if max_seq_len is not None else lengths
    result = {
        "max_seq_len": max_seq_len,
        "p50": float(np.percentile(lengths, 50)) if stats else None,
        "p95": float(np.percentile(lengths, 95)) if stats else None,
        "max": int(lengths.max()) if stats else None,
        "mean": float(lengths.mean()) if stats else None,
        "total": int(kept.sum()) if stats else 0,
        "trainable_total": int(trainable.sum()) if stats else 0,
        "over_max_seq_len": len(over),
        "over_max_seq_len_lines": over[:MAX_EXAMPLES],
        "zero_trainable": len(zero),
        "longest": [
            {"line": rows[i].line, "tokens": int(lengths[i])}
            for i in np.argsort(-lengths, kind="stable")[:MAX_EXAMPLES].tolist()
        ] if stats else [],
    }
    findings = []
    errors = []
    if over:
        findings.append(Finding(
            "over_max_seq_len", "warning",
            f"{len(over)} rows are longer than max_seq_len={max_seq_len} and will be truncated",
            len(over), _loc(path, over)))
    if zero:
        for r, s in zero:
            problem = (
                f"no trainable tokens after truncation to {max_seq_len} "
                f"(prompt is {s['n_prompt']} tokens)" if max_seq_len is not None
                and s["length"] > max_seq_len else "answer renders to no tokens"
            )
            errors.append({"file": path, "line": r.line, "field": "messages", "problem": problem,
                           "message": where(path, r.line, "messages", problem)})
        findings.append(Finding(
            "zero_trainable", "error",
            f"{len(zero)} rows have zero trainable tokens after truncation; raise max_seq_len "
            "or shorten the prompts", len(zero), _loc(path, [r.line for r, _ in zero])))
    return result, findings, errors


def _family(row: _Parsed) -> object:
    """The original a row was made from by ``finetune rebalance``, else the row itself."""
    if row.data.get("augmented") and row.data.get("source_id") is not None:
        return ("id", str(row.data["source_id"]))
    if row.data.get("id") is not None:
        return ("id", str(row.data["id"]))
    return ("line", row.line)


def _duplicates(rows: list[_Parsed], threshold: float, path: str) -> tuple[dict, list[Finding]]:
    prompt_keys = [dedup.text_key(_prompt_text(r, system=True)) for r in rows]
    answer_keys = [dedup.text_key(r.answer) for r in rows]
    full_keys = [p + a for p, a in zip(prompt_keys, answer_keys, strict=True)]
    exact = dedup.groups_of(full_keys)
    conflict = dedup.conflicts(prompt_keys, answer_keys)
    # Near duplicates among distinct texts; the system prompt is left out because a shared
    # system prompt would make every pair of rows look alike.
    bodies = [_body_text(r) for r in rows]
    body_keys = [dedup.text_key(b) for b in bodies]
    first_of: dict[bytes, int] = {}
    for i, key in enumerate(body_keys):
        first_of.setdefault(key, i)
    uniq = list(first_of.values())
    sigs = dedup.signatures([bodies[i] for i in uniq])
    clusters_u = dedup.near_duplicate_clusters(sigs, threshold)
    members: dict[bytes, list[int]] = {}
    for i, key in enumerate(body_keys):
        members.setdefault(key, []).append(i)
    near_idx = [sorted(i for u in c for i in members[body_keys[uniq[u]]]) for c in clusters_u]
    # A row and the copies `finetune rebalance` made of it are duplicates by design: groups
    # made only of one such family are counted apart, not warned about.
    families = [_family(r) for r in rows]
    augmented = sum(1 for g in exact + near_idx if len({families[i] for i in g}) == 1)
    exact = [g for g in exact if len({families[i] for i in g}) > 1]
    near_idx = [g for g in near_idx if len({families[i] for i in g}) > 1]
    near_clusters = sorted(([rows[i].line for i in g] for g in near_idx),
                           key=lambda c: (-len(c), c[0]))
    exact_lines = [[rows[i].line for i in g] for g in exact]
    conflict_lines = [[rows[i].line for i in g] for g in conflict]
    result = {
        "augmented_groups": augmented,
        "exact_groups": len(exact),
        "exact_rows": sum(len(g) - 1 for g in exact),
        "exact_examples": exact_lines[:MAX_EXAMPLES],
        "near_threshold": threshold,
        "near_clusters": len(near_clusters),
        "near_rows": sum(len(c) for c in near_clusters),
        "near_largest": len(near_clusters[0]) if near_clusters else 0,
        "near_examples": [c[:10] for c in near_clusters[:MAX_EXAMPLES]],
        "conflicts": len(conflict),
        "conflict_examples": conflict_lines[:MAX_EXAMPLES],
    }
    findings = []
    if exact:
        findings.append(Finding(
            "exact_duplicates", "warning",
            f"{result['exact_rows']} rows repeat an earlier row exactly ({len(exact)} groups)",
            result["exact_rows"], _cluster_examples(path, exact_lines)))
    if conflict:
        findings.append(Finding(
            "conflicts", "warning",
            f"{len(conflict)} prompts appear with different answers",
            len(conflict), _cluster_examples(path, conflict_lines)))
    if near_clusters:
        findings.append(Finding(
            "near_duplicates", "warning",
            f"{result['near_rows']} rows fall in {len(near_clusters)} near-duplicate clusters "
            f"(Jaccard >= {threshold}; largest {result['near_largest']} rows)",
            result["near_rows"], _cluster_examples(path, near_clusters)))
    return result, findings


def _leakage(
    train: list[_Parsed], held: list[_Parsed], threshold: float, train_path: str, held_path: str
) -> tuple[dict, list[Finding], list[dict[str, Any]]]:
    def key_text(r: _Parsed) -> str:
        return _prompt_text(r, system=False)

    train_keys: dict[bytes, int] = {}
    for r in train:
        train_keys.setdefault(dedup.text_key(key_text(r)), r.line)
    exact = []
    rest = []
    for r in held:
        hit = train_keys.get(dedup.text_key(key_text(r)))
        if hit is not None:
            exact.append((r.line, hit))
        else:
            rest.append(r)
    train_sigs = dedup.signatures([key_text(r) for r in train])
    held_sigs = dedup.signatures([key_text(r) for r in rest])
    near = [
        (r.line, train[m[0]].line, m[1])
        for r, m in zip(rest, dedup.near_matches(held_sigs, train_sigs, threshold), strict=True)
        if m is not None
    ]
    result = {
        "heldout_rows": len(held),
        "exact": len(exact),
        "exact_examples": [{"heldout_line": h, "train_line": t} for h, t in exact[:MAX_EXAMPLES]],
        "near": len(near),
        "near_threshold": threshold,
        "near_examples": [
            {"heldout_line": h, "train_line": t, "jaccard": round(s, 3)}
            for h, t, s in near[:MAX_EXAMPLES]
        ],
    }
    findings = []
    errors = []
    if exact:
        for h, t in exact:
            problem = f"held-out prompt appears in train ({train_path}:{t})"
            errors.append({"file": held_path, "line": h, "field": "messages", "problem": problem,
                           "message": where(held_path, h, "messages", problem)})
        findings.append(Finding(
            "leakage_exact", "error",
            f"{len(exact)} held-out prompts appear exactly in train", len(exact),
            [f"{held_path}:{h} = {train_path}:{t}" for h, t in exact[:MAX_EXAMPLES]]))
    if near:
        findings.append(Finding(
            "leakage_near", "warning",
            f"{len(near)} held-out prompts nearly match a train prompt (Jaccard >= {threshold})",
            len(near),
            [f"{held_path}:{h} ~ {train_path}:{t} ({s:.2f})" for h, t, s in near[:MAX_EXAMPLES]]))
    return result, findings, errors


def _pii(rows: list[_Parsed], path: str) -> tuple[dict, list[Finding]]:
    counts: Counter[str] = Counter()
    lines: dict[str, list[int]] = {k: [] for k in PII_KINDS}
    for r in rows:
        kinds = set()
        for m in r.messages:
            for match in find_pii(m["content"]):
                counts[match.kind] += 1
                kinds.add(match.kind)
        for kind in kinds:
            lines[kind].append(r.line)
    result = {
        "counts": {k: counts.get(k, 0) for k in PII_KINDS},
        "rows": {k: len(v) for k, v in lines.items()},
        "examples": {k: v[:MAX_EXAMPLES] for k, v in lines.items()},
    }
    findings = []
    n_rows = len({line for v in lines.values() for line in v})
    if n_rows:
        what = ", ".join(f"{counts[k]} {k}" for k in PII_KINDS if counts[k])
        examples = [f"{path}:{line} ({k})" for k in PII_KINDS for line in lines[k][:2]]
        findings.append(Finding(
            "pii", "warning", f"{n_rows} rows hold personal data ({what}); --redact OUT writes a "
            "redacted copy", n_rows, examples[:MAX_EXAMPLES]))
    return result, findings


def _labels(
    rows: list[_Parsed], label_field: str, max_ratio: float, path: str
) -> tuple[dict | None, list[Finding]]:
    values = [r.data.get(label_field) for r in rows]
    counts = Counter(str(v) for v in values if v is not None and v != "")
    if not counts:
        return None, []
    ratio = max(counts.values()) / min(counts.values())
    result = {
        "field": label_field,
        "counts": dict(counts.most_common()),
        "missing": sum(1 for v in values if v is None or v == ""),
        "imbalance_ratio": ratio,
        "max_ratio": max_ratio,
    }
    findings = []
    if len(counts) > 1 and ratio > max_ratio:
        (top, n_top), *_ = counts.most_common()
        low = min(counts, key=lambda k: (counts[k], k))
        findings.append(Finding(
            "label_imbalance", "warning",
            f"label {label_field!r} is imbalanced: {top!r} {n_top} rows vs {low!r} "
            f"{counts[low]} (ratio {ratio:.1f} > {max_ratio:g})", 1, []))
    return result, findings


# ---------------------------------------------------------------------------------------------
# The API


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

    Raises:
        InputError: unreadable input (exit 2).
        UsageError: bad option values (exit 2).
    """
    if not 0.0 < near_dup_threshold <= 1.0:
        raise UsageError(f"--near-dup-threshold: must be in (0, 1], got {near_dup_threshold}")
    if max_seq_len is not None and max_seq_len < 1:
        raise UsageError(f"--max-seq-len: must be >= 1, got {max_seq_len}")
    if epochs <= 0:
        raise UsageError(f"--epochs: must be > 0, got {epochs}")
    thresholds = thresholds or AuditThresholds()
    outcome_rule = OutcomeRule(outcome_pattern)  # validates the regex before any work
    path = str(data)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + now - clock, 4)
        clock = now

    rows, row_errors, n_rows = _read(data, progress, "reading")
    findings: list[Finding] = []
    # Bad options and an unreadable held-out file fail before the slow checks run.
    if group_field is not None and rows and not any(group_field in r.data for r in rows):
        raise UsageError(f"--group-field {group_field}: no row of {path} has this field")
    if label_field is not None and rows and not any(label_field in r.data for r in rows):
        raise UsageError(f"--label-field {label_field}: no row of {path} has this field")
    held: list[_Parsed] = []
    held_errors: list[dict[str, Any]] = []
    if heldout is not None:
        held, held_errors, _ = _read(heldout, progress, "reading held-out")
    lap("read")

    if tokenizer is None and base is not None:
        from finetune.models import load_tokenizer

        tokenizer = load_tokenizer(base)
        lap("load_tokenizer")
    tokens = None
    if tokenizer is not None and rows:
        tokens, token_findings, token_errors = _token_stats(
            rows, tokenizer, max_seq_len, progress, path)
        findings.extend(token_findings)
        row_errors.extend(token_errors)
        lap("tokens")

    duplicates, dup_findings = _duplicates(rows, near_dup_threshold, path)
    findings.extend(dup_findings)
    lap("duplicates")

    leakage = None
    if heldout is not None:
        if held_errors:
            row_errors.extend(held_errors)
            findings.append(Finding(
                "heldout_format", "error", f"{len(held_errors)} held-out rows are malformed",
                len(held_errors), [e["message"] for e in held_errors[:MAX_EXAMPLES]]))
        leakage, leak_findings, leak_errors = _leakage(
            rows, held, near_dup_threshold, path, str(heldout))
        findings.extend(leak_findings)
        row_errors.extend(leak_errors)
        lap("leakage")

    pii, pii_findings = _pii(rows, path)
    findings.extend(pii_findings)
    lap("pii")

    # Label field and bias audit.
    label_name = label_field or (
        DEFAULT_LABEL_FIELD if any(DEFAULT_LABEL_FIELD in r.data for r in rows) else None)
    labels = None
    if label_name is not None:
        labels, label_findings = _labels(rows, label_name, max_label_ratio, path)
        findings.extend(label_findings)
    if outcome_pattern is None:
        outcome_rule = OutcomeRule(None, label_name)
    bias = None
    if rows:
        groups = [row_group(r.data, _prompt_text(r, system=True), group_field) for r in rows]
        outcomes = (
            [outcome_rule(r.answer, r.data) for r in rows] if outcome_rule.source else None
        )
        bias = audit(
            groups, outcomes, thresholds=thresholds,
            group_source=f"field:{group_field}" if group_field else "inferred:gender (lexicon)",
            outcome_source=outcome_rule.source,
        )
        if bias["association_flagged"]:
            findings.append(Finding(
                "bias_association", "warning", bias["reasons"][-1], 1, []))
        if bias["representation_flagged"]:
            findings.append(Finding("bias_representation", "warning", bias["reasons"][0], 1, []))
        if outcome_pattern is not None and outcomes is not None:
            matched = [o for o in outcomes if o is not None and o != "(no match)"]
            if not matched:
                findings.append(Finding(
                    "outcome_no_match", "warning",
                    f"--outcome-pattern {outcome_pattern!r} matches no answer", 1, []))

    lap("audit")
    preflight = None
    if tokens is not None:
        preflight = {
            "epochs": epochs,
            "trainable_tokens": tokens["trainable_total"],
            "trainable_tokens_x_epochs": int(round(tokens["trainable_total"] * epochs)),
            "tokens_x_epochs": int(round(tokens["total"] * epochs)),
        }

    if row_errors:
        fmt_errors = [e for e in row_errors if e["file"] == path
                      and not e["problem"].startswith(("no trainable", "answer renders"))]
        if fmt_errors:
            findings.insert(0, Finding(
                "format", "error", f"{len(fmt_errors)} rows are malformed", len(fmt_errors),
                [e["message"] for e in fmt_errors[:MAX_EXAMPLES]]))
    row_errors.sort(key=lambda e: (e["file"] != path, e["file"], e["line"]))

    return ValidationReport(
        data=path,
        heldout=None if heldout is None else str(heldout),
        n_rows=n_rows,
        n_valid=len(rows),
        formats=dict(Counter(r.fmt for r in rows)),
        row_errors=row_errors,
        tokens=tokens,
        duplicates=duplicates,
        leakage=leakage,
        pii=pii,
        bias=bias,
        labels=labels,
        preflight=preflight,
        findings=findings,
        settings={
            "base": base,
            "tokenizer": getattr(tokenizer, "name_or_path", None) if tokenizer else None,
            "max_seq_len": tokens["max_seq_len"] if tokens else max_seq_len,
            "group_field": group_field,
            "outcome_pattern": outcome_pattern,
            "label_field": label_name,
            "near_dup_threshold": near_dup_threshold,
            "epochs": epochs,
            "alpha": thresholds.alpha,
            "min_cramers_v": thresholds.min_cramers_v,
            "min_group_ratio": thresholds.min_group_ratio,
            "max_label_ratio": max_label_ratio,
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
# Rendering


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


def _sections(report: ValidationReport) -> list[tuple[str, list[str], list[list[Any]]]]:
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
        title = f"Bias audit (group: {b['group_source']}; outcome: {b['outcome_source'] or '-'})"
        out.append((title, headers, rows))
        if b.get("test"):
            tt = b["test"]
            out.append(("Association test", ["chi2", "dof", "p", "Cramér's V", "flagged"],
                        [[f"{tt['chi2']:.2f}", tt["dof"], f"{tt['p_value']:.3g}",
                          f"{tt['cramers_v']:.3f}", "YES" if b["association_flagged"] else "no"]]))
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
    for title, headers, rows in _sections(report):
        lines += ["", title, *_table(headers, rows)]
    if report.bias and not report.bias["outcome_source"]:
        lines += ["(no outcome audited: pass --outcome-pattern REGEX, e.g. a word of the answer "
                  "such as premium, or --label-field FIELD)"]
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
    for title, headers, rows in _sections(report):
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

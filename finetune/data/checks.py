"""The data checks of ``finetune validate``: each a unit, listed once in :data:`CHECKS`.

A check is a function ``(Context) -> CheckResult | None`` (the types in
``finetune.data.findings``): it reads the parsed rows and the options from the ``Context``,
and returns its section of the report (``tokens``, ``duplicates``, ...), its ``Finding``
objects and the per-row errors it found, or None when it does not apply (no tokenizer, no
held-out file). ``validate`` runs :data:`CHECKS` in order and times each; rendering lives in
``finetune.data.render``.

To add a check: write ``def _my_check(ctx: Context) -> CheckResult | None`` here and append
``Check("my_check", _my_check)`` to :data:`CHECKS` (a section other than None also needs a
field on ``ValidationReport`` (``report.py``) and a table in ``render.py``).
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np

from finetune.data import dedup
from finetune.data.audit import OutcomeRule, row_group
from finetune.data.findings import Check, CheckResult, Context, Finding, Parsed, row_error
from finetune.data.formats import encode_batch
from finetune.data.pii import KINDS as PII_KINDS
from finetune.data.pii import find_pii

MAX_EXAMPLES = 5
TOKEN_CHUNK = 2048
FORMAT_NAMES = {"chat": "chat", "prompt_completion": "prompt/completion",
                "instruction": "instruction"}




def prompt_text(row: Parsed, *, system: bool) -> str:
    """The prompt turns as ``role: content`` lines (the key of duplicates and leakage)."""
    return "\n".join(
        f"{m['role']}: {m['content']}" for m in row.prompt_messages
        if system or m["role"] != "system"
    )


def _body_text(row: Parsed) -> str:
    return "\n".join(m["content"] for m in row.messages if m["role"] != "system")


def _loc(path: str, lines: list[int], limit: int = MAX_EXAMPLES) -> list[str]:
    return [f"{path}:{line}" for line in lines[:limit]]


def _cluster_examples(path: str, clusters: list[list[int]]) -> list[str]:
    out = []
    for lines in clusters[:MAX_EXAMPLES]:
        shown = ", ".join(str(x) for x in lines[:4])
        more = f" (+{len(lines) - 4} more)" if len(lines) > 4 else ""
        out.append(f"{path}: lines {shown}{more}")
    return out


# --------------------------------------------------------------------------- format


def _format(ctx: Context) -> CheckResult:
    """Rows of the data file that do not normalise to chat messages (read by ``validate``)."""
    errors = ctx.read_errors
    findings = []
    if errors:
        findings.append(Finding(
            "format", "error", f"{len(errors)} rows are malformed", len(errors),
            [e["message"] for e in errors[:MAX_EXAMPLES]]))
    return CheckResult(None, findings=findings, row_errors=errors)


def _mixed_formats(ctx: Context) -> CheckResult:
    """Rows in more than one format: TRL and OpenAI's validator refuse such files."""
    counts = Counter(r.fmt for r in ctx.rows)
    if len(counts) < 2:
        return CheckResult(None)
    main, n_main = counts.most_common(1)[0]
    minority = [r.line for r in ctx.rows if r.fmt != main]
    others = ", ".join(f"{n} {FORMAT_NAMES.get(f, f)}" for f, n in counts.most_common()[1:])
    lines = ", ".join(map(str, minority[:10])) + (", ..." if len(minority) > 10 else "")
    message = (f"mixed formats: {others} rows among {n_main} {FORMAT_NAMES.get(main, main)} "
               f"rows (lines {lines}); use one format per file")
    return CheckResult(None, findings=[Finding("mixed_formats", "warning", message,
                                               len(minority), _loc(ctx.path, minority))])


# --------------------------------------------------------------------------- tokens


def _token_lengths(ctx: Context) -> tuple[int | None, list[dict[str, int]]]:
    from tqdm import tqdm

    max_seq_len = ctx.max_seq_len
    if max_seq_len is None:
        limit = getattr(ctx.tokenizer, "model_max_length", None)
        max_seq_len = int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None
    stats: list[dict[str, int]] = []
    bar = tqdm(total=len(ctx.rows), desc="tokens", unit=" rows", leave=False, mininterval=0.5,
               disable=None if ctx.progress else True, file=sys.stderr)
    for start in range(0, len(ctx.rows), TOKEN_CHUNK):
        chunk = ctx.rows[start : start + TOKEN_CHUNK]
        stats.extend(encode_batch(ctx.tokenizer, [r.messages for r in chunk], max_seq_len))
        bar.update(len(chunk))
    bar.close()
    return max_seq_len, stats


def _tokens(ctx: Context) -> CheckResult | None:
    """Lengths with the base's chat template; over-long rows; rows with nothing to train on."""
    if ctx.tokenizer is None or not ctx.rows:
        return None
    rows, path = ctx.rows, ctx.path
    max_seq_len, stats = _token_lengths(ctx)
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
    out = CheckResult("tokens", result)
    if over:
        out.findings.append(Finding(
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
            out.row_errors.append(row_error(path, r.line, "messages", problem))
        out.findings.append(Finding(
            "zero_trainable", "error",
            f"{len(zero)} rows have zero trainable tokens after truncation; raise max_seq_len "
            "or shorten the prompts", len(zero), _loc(path, [r.line for r, _ in zero])))
    return out


# --------------------------------------------------------------------------- duplicates


def _family(row: Parsed) -> object:
    """The original a row was made from by ``finetune rebalance``, else the row itself."""
    if row.data.get("augmented") and row.data.get("source_id") is not None:
        return ("id", str(row.data["source_id"]))
    if row.data.get("id") is not None:
        return ("id", str(row.data["id"]))
    return ("line", row.line)


def _near_groups(rows: list[Parsed], threshold: float) -> list[list[int]]:
    """Row indices of near-duplicate clusters among distinct texts.

    The system prompt is left out: a shared one would make every pair of rows look alike.
    """
    bodies = [_body_text(r) for r in rows]
    body_keys = [dedup.text_key(b) for b in bodies]
    first_of: dict[bytes, int] = {}
    for i, key in enumerate(body_keys):
        first_of.setdefault(key, i)
    uniq = list(first_of.values())
    clusters_u = dedup.near_duplicate_clusters(dedup.signatures([bodies[i] for i in uniq]),
                                               threshold)
    members: dict[bytes, list[int]] = {}
    for i, key in enumerate(body_keys):
        members.setdefault(key, []).append(i)
    return [sorted(i for u in c for i in members[body_keys[uniq[u]]]) for c in clusters_u]


def _duplicates(ctx: Context) -> CheckResult:
    """Exact duplicates, near duplicates (MinHash LSH) and conflicts (one prompt, two answers)."""
    rows, path, threshold = ctx.rows, ctx.path, ctx.near_dup_threshold
    prompt_keys = [dedup.text_key(prompt_text(r, system=True)) for r in rows]
    answer_keys = [dedup.text_key(r.answer) for r in rows]
    exact = dedup.groups_of([p + a for p, a in zip(prompt_keys, answer_keys, strict=True)])
    conflict = dedup.conflicts(prompt_keys, answer_keys)
    near_idx = _near_groups(rows, threshold)
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
    out = CheckResult("duplicates", result)
    if exact:
        out.findings.append(Finding(
            "exact_duplicates", "warning",
            f"{result['exact_rows']} rows repeat an earlier row exactly ({len(exact)} groups)",
            result["exact_rows"], _cluster_examples(path, exact_lines)))
    if conflict:
        out.findings.append(Finding(
            "conflicts", "warning", f"{len(conflict)} prompts appear with different answers",
            len(conflict), _cluster_examples(path, conflict_lines)))
    if near_clusters:
        out.findings.append(Finding(
            "near_duplicates", "warning",
            f"{result['near_rows']} rows fall in {len(near_clusters)} near-duplicate clusters "
            f"(Jaccard >= {threshold}; largest {result['near_largest']} rows)",
            result["near_rows"], _cluster_examples(path, near_clusters)))
    return out


# --------------------------------------------------------------------------- held-out


def _heldout_format(ctx: Context) -> CheckResult | None:
    """Rows of the held-out file that do not parse."""
    if ctx.heldout is None or not ctx.held_errors:
        return None
    errors = ctx.held_errors
    return CheckResult(None, findings=[Finding(
        "heldout_format", "error", f"{len(errors)} held-out rows are malformed", len(errors),
        [e["message"] for e in errors[:MAX_EXAMPLES]])], row_errors=errors)


def _leakage(ctx: Context) -> CheckResult | None:
    """Held-out prompts found in train: exactly (an error) or nearly (a warning)."""
    if ctx.heldout is None:
        return None
    train, held, threshold = ctx.rows, ctx.held, ctx.near_dup_threshold
    train_path, held_path = ctx.path, ctx.heldout

    def key_text(r: Parsed) -> str:
        return prompt_text(r, system=False)

    train_keys: dict[bytes, int] = {}
    for r in train:
        train_keys.setdefault(dedup.text_key(key_text(r)), r.line)
    exact, rest = [], []
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
    out = CheckResult("leakage", {
        "heldout_rows": len(held),
        "exact": len(exact),
        "exact_examples": [{"heldout_line": h, "train_line": t} for h, t in exact[:MAX_EXAMPLES]],
        "near": len(near),
        "near_threshold": threshold,
        "near_examples": [
            {"heldout_line": h, "train_line": t, "jaccard": round(s, 3)}
            for h, t, s in near[:MAX_EXAMPLES]
        ],
    })
    if exact:
        out.row_errors = [row_error(held_path, h, "messages",
                                    f"held-out prompt appears in train ({train_path}:{t})")
                          for h, t in exact]
        out.findings.append(Finding(
            "leakage_exact", "error",
            f"{len(exact)} held-out prompts appear exactly in train", len(exact),
            [f"{held_path}:{h} = {train_path}:{t}" for h, t in exact[:MAX_EXAMPLES]]))
    if near:
        out.findings.append(Finding(
            "leakage_near", "warning",
            f"{len(near)} held-out prompts nearly match a train prompt (Jaccard >= {threshold})",
            len(near),
            [f"{held_path}:{h} ~ {train_path}:{t} ({s:.2f})" for h, t, s in near[:MAX_EXAMPLES]]))
    return out


# --------------------------------------------------------------------------- PII, labels, bias


def _pii(ctx: Context) -> CheckResult:
    """E-mail addresses, phone numbers and Luhn-checked card numbers (``pii.py``)."""
    counts: Counter[str] = Counter()
    lines: dict[str, list[int]] = {k: [] for k in PII_KINDS}
    for r in ctx.rows:
        kinds = set()
        for m in r.messages:
            for match in find_pii(m["content"]):
                counts[match.kind] += 1
                kinds.add(match.kind)
        for kind in kinds:
            lines[kind].append(r.line)
    out = CheckResult("pii", {
        "counts": {k: counts.get(k, 0) for k in PII_KINDS},
        "rows": {k: len(v) for k, v in lines.items()},
        "examples": {k: v[:MAX_EXAMPLES] for k, v in lines.items()},
    })
    n_rows = len({line for v in lines.values() for line in v})
    if n_rows:
        what = ", ".join(f"{counts[k]} {k}" for k in PII_KINDS if counts[k])
        examples = [f"{ctx.path}:{line} ({k})" for k in PII_KINDS for line in lines[k][:2]]
        out.findings.append(Finding(
            "pii", "warning", f"{n_rows} rows hold personal data ({what}); --redact OUT writes a "
            "redacted copy", n_rows, examples[:MAX_EXAMPLES]))
    return out


def _labels(ctx: Context) -> CheckResult | None:
    """Label balance, when a label field is in use."""
    if ctx.label_field is None:
        return None
    label_field, max_ratio = ctx.label_field, ctx.max_label_ratio
    values = [r.data.get(label_field) for r in ctx.rows]
    counts = Counter(str(v) for v in values if v is not None and v != "")
    if not counts:
        return None
    ratio = max(counts.values()) / min(counts.values())
    out = CheckResult("labels", {
        "field": label_field,
        "counts": dict(counts.most_common()),
        "missing": sum(1 for v in values if v is None or v == ""),
        "imbalance_ratio": ratio,
        "max_ratio": max_ratio,
    })
    if len(counts) > 1 and ratio > max_ratio:
        (top, n_top), *_ = counts.most_common()
        low = min(counts, key=lambda k: (counts[k], k))
        out.findings.append(Finding(
            "label_imbalance", "warning",
            f"label {label_field!r} is imbalanced: {top!r} {n_top} rows vs {low!r} "
            f"{counts[low]} (ratio {ratio:.1f} > {max_ratio:g})", 1, []))
    return out


def _bias(ctx: Context) -> CheckResult | None:
    """Group x outcome on every axis (``finetune.data.bias``); outcome discovery without one."""
    from finetune.data.bias import audit_rows, discovery_lines

    if not ctx.rows:
        return None
    rule = OutcomeRule(ctx.outcome_pattern) if ctx.outcome_pattern is not None else \
        OutcomeRule(None, ctx.label_field)
    outcomes = [rule(r.answer, r.data) for r in ctx.rows] if rule.source else None
    prompts = [prompt_text(r, system=True) for r in ctx.rows]
    bias = audit_rows(
        prompts, [r.answer for r in ctx.rows], outcomes, axes=ctx.axes,
        thresholds=ctx.thresholds, outcome_source=rule.source, group_field=ctx.group_field,
        group_field_groups=[row_group(r.data, "", ctx.group_field) for r in ctx.rows]
        if ctx.group_field else None)
    out = CheckResult("bias", bias)
    per_axis = bias["axes"] or {bias["axis"]: bias}
    for result in per_axis.values():
        if result["association_flagged"]:
            out.findings.append(Finding("bias_association", "warning", result["reasons"][-1], 1))
        if result["representation_flagged"]:
            out.findings.append(Finding("bias_representation", "warning", result["reasons"][0],
                                        1))
    for line in discovery_lines(bias.get("discovered") or {}):
        out.findings.append(Finding("bias_discovered", "warning", line, 1))
    if ctx.outcome_pattern is not None and outcomes is not None:
        if not [o for o in outcomes if o is not None and o != "(no match)"]:
            out.findings.append(Finding(
                "outcome_no_match", "warning",
                f"--outcome-pattern {ctx.outcome_pattern!r} matches no answer", 1, []))
    return out


def _preflight(ctx: Context) -> CheckResult | None:
    """Tokens x epochs, from the token check."""
    tokens = ctx.sections.get("tokens")
    if tokens is None:
        return None
    return CheckResult("preflight", {
        "epochs": ctx.epochs,
        "trainable_tokens": tokens["trainable_total"],
        "trainable_tokens_x_epochs": int(round(tokens["trainable_total"] * ctx.epochs)),
        "tokens_x_epochs": int(round(tokens["total"] * ctx.epochs)),
    })


CHECKS: list[Check] = [
    Check("format", _format, "read"),
    Check("mixed_formats", _mixed_formats, "read"),
    Check("tokens", _tokens, "tokens"),
    Check("duplicates", _duplicates, "duplicates"),
    Check("heldout_format", _heldout_format, "leakage"),
    Check("leakage", _leakage, "leakage"),
    Check("pii", _pii, "pii"),
    Check("labels", _labels, "audit"),
    Check("bias", _bias, "audit"),
    Check("preflight", _preflight, "audit"),
]
"""Every check, in report order."""

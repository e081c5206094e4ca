"""Outcome discovery: which words of the answers depend on a group, on any axis.

Without ``--outcome-pattern`` a user may not know where a bias hides. Every word of the
answers (letters, three or more, in at least ``min_rows`` rows and missing from at least as
many) is tested against each axis's groups: a groups x (word present, absent) table, through
the audit's own test (chi-square, Fisher's exact test for a small 2x2 table) and Cramér's V.
The p-values of all words on all axes are corrected together with Benjamini-Hochberg
(``statsmodels.stats.multitest``, false discovery rate ``q``); what survives and is large
(V >= ``min_cramers_v``) is listed strongest first. The axis's own signals (names, pronouns,
gendered words) are not outcomes and are skipped: "thank you, Mary" depends on gender
trivially.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from finetune.data.audit import association
from finetune.data.lexicon import find_terms

_WORD = re.compile(r"[^\W\d_]{3,}")


def _is_signal(word: str, axis: str) -> bool:
    return bool(find_terms(word, axis) or find_terms(word.capitalize(), axis))


def discover_outcomes(
    answers: Sequence[str],
    groups_by_axis: dict[str, Sequence[str | None]],
    *,
    q: float = 0.01,
    min_cramers_v: float = 0.2,
    min_rows: int = 10,
    limit: int = 10,
) -> dict[str, Any]:
    """Words of the answers whose presence depends on an axis's group.

    Args:
        answers: One answer per row.
        groups_by_axis: Each axis's group per row (None when unknown).
        q: False discovery rate (Benjamini-Hochberg over every word on every axis).
        min_cramers_v: Smallest effect reported.
        min_rows: A word is tested when it is in, and missing from, at least this many rows.
        limit: Findings kept, strongest first.

    Returns:
        ``tests`` (how many word x axis tests ran), ``q``, and ``found``: dicts with ``axis``,
        ``word``, ``rates`` (share of each group's rows holding it), ``p_value``, ``q_value``,
        ``cramers_v`` and ``method``.
    """
    from statsmodels.stats.multitest import multipletests

    words = [set(w.lower() for w in _WORD.findall(a)) for a in answers]
    counts: dict[str, int] = {}
    for row in words:
        for w in row:
            counts[w] = counts.get(w, 0) + 1
    n = len(answers)
    vocab = sorted(w for w, c in counts.items() if min_rows <= c <= n - min_rows)
    from scipy.sparse import csr_matrix

    column = {w: j for j, w in enumerate(vocab)}
    # row x word, sparse: a million rows of a few words each stay small
    cells = [(i, column[w]) for i, row in enumerate(words) for w in row if w in column]
    holds = csr_matrix((np.ones(len(cells), dtype=np.int64),
                        ([c[0] for c in cells], [c[1] for c in cells])),
                       shape=(n, len(vocab)))
    candidates: list[dict[str, Any]] = []
    for axis, groups in groups_by_axis.items():
        known = sorted({g for g in groups if g is not None})
        if len(known) < 2:
            continue
        member = np.array([[x == g for x in groups] for g in known], dtype=np.int64)
        by_group = np.asarray((holds.T @ member.T).T)  # group x word counts
        sizes = member.sum(axis=1)
        for word in vocab:
            if _is_signal(word, axis):
                continue
            present = by_group[:, column[word]]
            test = association(np.stack([present, sizes - present], axis=1))
            if test is None:
                continue
            candidates.append({
                "axis": axis, "word": word,
                "rates": {g: float(p / s) for g, p, s in zip(known, present, sizes, strict=True)},
                "p_value": test["p_value"], "cramers_v": test["cramers_v"],
                "method": test["method"], "n": test["n"],
            })
    if candidates:
        q_values = multipletests([c["p_value"] for c in candidates], method="fdr_bh")[1]
        for c, qv in zip(candidates, q_values, strict=True):
            c["q_value"] = float(qv)
    found = [c for c in candidates if c["q_value"] < q and c["cramers_v"] >= min_cramers_v]
    found.sort(key=lambda c: (-c["cramers_v"], c["q_value"], c["axis"], c["word"]))
    return {"tests": len(candidates), "q": q, "min_cramers_v": min_cramers_v,
            "found": found[:limit], "n_found": len(found)}

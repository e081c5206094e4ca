"""A held-out pair swapped both ways is one draw, not two: the flip-rate interval widens."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from evalsuite.fairness.counterfactual import _prompt_key
from evalsuite.fairness.flips import swap_clusters
from evalsuite.fairness.intervals import clustered_ci


def _row(i: int, text: str):
    return SimpleNamespace(index=i, prompt=[{"role": "user", "content": text}])


def _answer(row, text: str):
    key = _prompt_key([{"role": "user", "content": text}])
    return SimpleNamespace(variant=SimpleNamespace(row=row, key=key))


def test_pairs_that_are_each_others_swap_form_one_cluster():
    # 40 gender pairs (rows 2k, 2k+1): each row's variant is its partner's prompt, as the demo's
    # held-out set is built; plus one row whose variant is new text.
    rows = [_row(i, f"{'Mary' if i % 2 else 'John'} asks {i // 2}") for i in range(80)]
    rows.append(_row(80, "Anna asks alone"))
    answers = [_answer(r, rows[r.index ^ 1].prompt[0]["content"]) for r in rows[:80]]
    answers.append(_answer(rows[80], "Adam asks alone"))
    clusters = swap_clusters(answers, rows)
    assert clusters[:80] == [2 * (i // 2) for i in range(80)] and clusters[80] == 80
    assert len(set(clusters)) == 41

    # both swaps of a pair compare the same two answers: they flip together
    flips_by_pair = (np.random.default_rng(0).random(40) < 0.1).astype(float)
    flips = list(np.repeat(flips_by_pair, 2)) + [0.0]
    by_row = clustered_ci(flips, [a.variant.row.index for a in answers], n_boot=2000)
    by_pair = clustered_ci(flips, clusters, n_boot=2000)
    # one draw per pair: the interval of the 40 pairs themselves
    assert clustered_ci(flips[:80], clusters[:80], n_boot=2000) == clustered_ci(
        list(flips_by_pair), list(range(40)), n_boot=2000)
    width = [hi - lo for lo, hi in (by_row, by_pair)]
    assert width[1] > 1.2 * width[0]  # about sqrt(2) wider; measured 1.33x

"""The overfitting check: a run whose held-out loss rose while its train loss kept falling.

It reads a run's ``metrics.jsonl`` curves; ``evalsuite run`` reports it per adapter and the
report draws the curves.
"""

from __future__ import annotations

import math
from typing import Any

OVERFIT_TOLERANCE = 0.02
"""Held-out loss counts as rising when its last value exceeds its minimum by this fraction."""


def overfitting_check(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Flag a run whose held-out loss rose from its minimum while the train loss kept falling.

    Returns:
        ``flagged``, ``reason``, and the ``train`` / ``eval`` curves as ``[step, loss]`` pairs.
    """
    def curve(key: str) -> list[list[float]]:
        pts = []
        for i, m in enumerate(metrics):
            value = m.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                pts.append([float(m.get("step", i)), float(value)])
        return pts

    train, heldout = curve("train_loss"), curve("eval_loss")
    out: dict[str, Any] = {"train": train, "eval": heldout, "flagged": False}
    if len(heldout) < 3 or len(train) < 2:
        out["reason"] = "too few logged losses to judge"
        return out
    best = min(range(len(heldout)), key=lambda k: heldout[k][1])
    best_step, best_loss = heldout[best]
    last_step, last_loss = heldout[-1]
    before = [t for t in train if t[0] <= best_step] or train[:1]
    train_at_best = before[-1][1]
    train_last = train[-1][1]
    rising = best < len(heldout) - 1 and last_loss > best_loss * (1 + OVERFIT_TOLERANCE)
    falling = train_last < train_at_best
    out.update(
        best_step=best_step, best_eval_loss=best_loss, last_eval_loss=last_loss,
        train_loss_at_best=train_at_best, last_train_loss=train_last,
        flagged=bool(rising and falling),
    )
    if rising and falling:
        out["reason"] = (
            f"held-out loss rose {best_loss:.4f} -> {last_loss:.4f} after step {best_step:g} "
            f"while train loss fell {train_at_best:.4f} -> {train_last:.4f}"
        )
    else:
        out["reason"] = "held-out loss did not rise while train loss fell"
    return out

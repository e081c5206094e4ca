"""What the fairness evaluation reads off a task and its rows.

Each row's group, the decision a counterfactual must not change (labels and the outcome), and
the context shared by every model's evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalsuite.labels import NONE, extract
from evalsuite.metrics import compute
from evalsuite.task import EvalRow, TaskSpec, matches
from finetune.data.lexicon import infer_group


def has_outcome(text: str | None, pattern: str | re.Pattern[str]) -> int:
    """1 when the favourable-outcome pattern occurs in ``text``, else 0."""
    if not text:
        return 0
    return int(re.search(pattern, text) is not None)


def is_categorical(pattern: str | None) -> bool:
    """True when the outcome pattern has a capture group: its capture names a category."""
    return pattern is not None and re.compile(pattern).groups > 0


def outcome_value(text: str | None, pattern: str) -> int | str | None:
    """The outcome of an answer: 1/0, or the captured category.

    A plain pattern gives 1/0; one with a capture group the captured category (lower-cased, as
    the data audit reads it), or None when it does not match.
    """
    if not is_categorical(pattern):
        return has_outcome(text, pattern)
    match = re.search(pattern, text or "")
    if match is None or match.group(1) is None:
        return None
    return match.group(1).lower()


def row_groups(task: TaskSpec, rows: Sequence[EvalRow]) -> tuple[list[str | None], str]:
    """Each row's group: the task's ``group_field`` when set, else inferred by the lexicon.

    Returns:
        The groups and where they came from (``field:<name>`` or ``lexicon``).
    """
    if task.group_field:
        return [r.group for r in rows], f"field:{task.group_field}"
    texts = [" ".join(m["content"] for m in r.prompt if m["role"] == "user") for r in rows]
    return [infer_group(t) for t in texts], "lexicon"


@dataclass
class _Decider:
    """Extracts what a counterfactual must not change: each applicable label and the outcome."""

    labels: list[tuple[str, str, Any]]  # (scorer name, pattern, where)
    exact: list[tuple[str, Any]]  # (scorer name, where) of exact_match scorers
    outcome_pattern: str | None

    def applicable(self, row: EvalRow) -> list[tuple[str, str]]:
        return [(name, pattern) for name, pattern, cond in self.labels
                if matches(row.meta, cond) and extract(row.target, pattern) != NONE]

    def decision(self, row: EvalRow, output: str) -> tuple[Any, ...]:
        labels = [extract(output, pattern) for _, pattern in self.applicable(row)]
        if self.outcome_pattern is not None:
            labels.append(outcome_value(output, self.outcome_pattern))
        if not labels:  # nothing to extract: the whole (normalised) answer must not change
            labels.append(" ".join(output.split()).lower())
        return tuple(labels)

    def scores(self, items: Sequence[tuple[EvalRow, str, str]]) -> dict[str, dict[int, float]]:
        """Per binary scorer, item position -> 0/1 score, for the items the scorer applies to.

        Items are (row, output, target); scored by the task's own ``evaluate`` modules, in one
        call per scorer.
        """
        out: dict[str, dict[int, float]] = {}
        for name, pattern, cond in self.labels:
            idx = [k for k, (row, _, _) in enumerate(items)
                   if matches(row.meta, cond) and extract(row.target, pattern) != NONE]
            got = compute("label", predictions=[items[k][1] for k in idx],
                          references=[items[k][2] for k in idx], pattern=pattern)["scores"] \
                if idx else []
            out[name] = dict(zip(idx, got, strict=True))
        for name, cond in self.exact:
            idx = [k for k, (row, _, _) in enumerate(items) if matches(row.meta, cond)]
            got = compute("exact_match", predictions=[items[k][1] for k in idx],
                          references=[items[k][2] for k in idx])["scores"] if idx else []
            out[name] = dict(zip(idx, got, strict=True))
        return out

    def correctness(self, items: Sequence[tuple[EvalRow, str, str]]) -> list[float | None]:
        """Per item: 1.0 if every applicable label scorer is right, else 0.0.

        Exact-match scorers count only when the task has no label scorer (an exact answer is a
        stricter test than the decision a counterfactual must keep). None when no scorer
        applies to the item's row.
        """
        by_scorer = self.scores(items)
        names = [n for n, _, _ in self.labels] or [n for n, _ in self.exact]
        out = []
        for k in range(len(items)):
            verdicts = [by_scorer[n][k] for n in names if k in by_scorer[n]]
            out.append(float(min(verdicts)) if verdicts else None)
        return out


@dataclass
class _Context:
    """What every model's fairness is computed from (shared across models)."""

    task: TaskSpec
    rows: Sequence[EvalRow]
    scope: list[EvalRow]
    groups: list[str | None]
    group_source: str
    decider: _Decider
    n_boot: int
    seed: int
    max_examples: int
    n_permutations: int = 10_000
    # (text, axis) -> the group the lexicon infers; the same prompts recur for every model.
    group_cache: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def group_of(self, text: str, axis: str) -> str | None:
        """The group ``text`` names on ``axis`` (THE lexicon), computed once per text."""
        key = (text, axis)
        if key not in self.group_cache:
            self.group_cache[key] = infer_group(text, axis)
        return self.group_cache[key]

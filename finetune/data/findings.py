"""What a data check reads and returns: parsed rows, the :class:`Context`, findings, results.

The checks themselves live in ``finetune.data.checks`` (listed once in ``CHECKS``);
``finetune.data.validate`` builds the :class:`Context`, runs them and gathers their
:class:`CheckResult` objects into a ``ValidationReport``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from finetune.data.audit import AuditThresholds
from finetune.data.formats import split_prompt
from finetune.errors import where


@dataclass
class Finding:
    """One check that fired: what, how bad, how many, and where to look."""

    check: str
    severity: str
    """``error`` or ``warning``."""
    message: str
    count: int
    examples: list[str] = field(default_factory=list)


def row_error(path: str, line: int, field_name: str | None, problem: str) -> dict[str, Any]:
    """One row's error as the report lists it (``message`` is ``file:line: field: problem``)."""
    return {"file": str(path), "line": line, "field": field_name, "problem": problem,
            "message": where(path, line, field_name, problem)}


@dataclass
class CheckResult:
    """What one check found: its report section, its findings, its row errors."""

    section: str | None
    """The ``ValidationReport`` field ``data`` goes to; None for findings only."""
    data: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    row_errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Parsed:
    """A row that normalised to chat messages."""

    line: int
    data: dict[str, Any]
    messages: list[dict[str, str]]
    fmt: str

    @cached_property
    def prompt_messages(self) -> list[dict[str, str]]:
        """The messages before the final assistant turn."""
        return split_prompt(self.messages)[0]

    @cached_property
    def answer(self) -> str:
        """The final assistant turn."""
        return split_prompt(self.messages)[1]


@dataclass
class Context:
    """What every check may read: the parsed rows, the read errors and the options."""

    path: str
    rows: list[Parsed]
    read_errors: list[dict[str, Any]]
    heldout: str | None = None
    held: list[Parsed] = field(default_factory=list)
    held_errors: list[dict[str, Any]] = field(default_factory=list)
    tokenizer: Any = None
    max_seq_len: int | None = None
    group_field: str | None = None
    outcome_pattern: str | None = None
    label_field: str | None = None
    """The label column in use (named, or ``label`` when rows have it)."""
    near_dup_threshold: float = 0.85
    thresholds: AuditThresholds = field(default_factory=AuditThresholds)
    max_label_ratio: float = 5.0
    axes: list[str] | None = None
    """Axes the bias audit infers groups on (default every known axis but ``name``)."""
    epochs: float = 1.0
    progress: bool = False
    sections: dict[str, Any] = field(default_factory=dict)
    """Sections filled by earlier checks (the pre-flight estimate reads ``tokens``)."""


@dataclass(frozen=True)
class Check:
    """A named check; ``stage`` is the key its seconds are added to in ``timings``."""

    name: str
    run: Callable[[Context], CheckResult | None]
    stage: str = ""

"""What ``finetune validate`` found: :class:`ValidationReport`, the full ``data_report.json``.

``finetune.data.validate`` fills it; ``finetune.data.render`` lays it out for the terminal
and ``report.md``; a training run keeps its :meth:`~ValidationReport.summary` in ``run.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from finetune.data.findings import Finding


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
                "axis": self.bias.get("axis"),
                "axes": {a: {"flagged": r["flagged"], "test": r.get("test")}
                         for a, r in (self.bias.get("axes") or {}).items()},
                "discovered": [f"{c['axis']}: {c['word']}" for c in
                               (self.bias.get("discovered") or {}).get("found", [])],
                "group_source": self.bias.get("group_source"),
                "outcome_source": self.bias.get("outcome_source"),
                "test": self.bias.get("test"),
                "reasons": self.bias.get("reasons"),
            } if self.bias else None,
            "findings": [f"{f.severity}: {f.check}: {f.message}" for f in self.findings],
        }

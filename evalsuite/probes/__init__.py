"""Stereotype probe sets in the CrowS-Pairs column layout.

A probe is a pair of sentences that differ only in the group they speak about: ``sent_more``
(the more stereotypical one), ``sent_less`` (the less stereotypical one) and ``bias_type``
(gender, age, ...). Other columns, such as CrowS-Pairs' ``stereo_antistereo``, are ignored.

``builtin`` is a small set written for tuneproof (``builtin.jsonl`` beside this file: 40
pairs, mostly gender); a user file is any CSV or JSONL with those columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finetune.data.formats import iter_rows
from finetune.errors import InputError, where

BUILTIN = Path(__file__).with_name("builtin.jsonl")
COLUMNS = ("sent_more", "sent_less", "bias_type")


@dataclass(frozen=True)
class ProbePair:
    """One probe: the more and the less stereotypical sentence and the kind of bias."""

    sent_more: str
    sent_less: str
    bias_type: str
    line: int


def resolve_probes(spec: str | Path | None, base_dir: str | Path | None = None) -> Path | None:
    """The probe file a task's ``fairness.probes`` names: ``builtin``, a path, or none.

    Relative paths are resolved against ``base_dir`` (the task YAML's folder).
    """
    if spec is None or str(spec).strip().lower() in ("", "none", "false", "off"):
        return None
    if str(spec).strip().lower() == "builtin":
        return BUILTIN
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def load_probes(spec: str | Path | None, base_dir: str | Path | None = None) -> list[ProbePair]:
    """Read a probe set: ``builtin``, or a CSV / JSONL file in the CrowS-Pairs layout.

    Args:
        spec: ``builtin``, a file path, or None / ``none`` for no probes.
        base_dir: Folder that relative paths are relative to.

    Returns:
        The probe pairs in file order (empty for no probes).

    Raises:
        InputError: a missing or unreadable file, or a row without a non-empty
            ``sent_more`` / ``sent_less``, named by file, line and field.
    """
    path = resolve_probes(spec, base_dir)
    if path is None:
        return []
    pairs = []
    for row in iter_rows(path):
        if row.data is None:
            field, problem = row.problems[0]
            raise InputError(where(path, row.line, field, problem))
        values = {}
        for column in ("sent_more", "sent_less"):
            value = row.data.get(column)
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if value is None else "expected a non-empty string"
                raise InputError(where(path, row.line, column, problem))
            values[column] = value.strip()
        if values["sent_more"] == values["sent_less"]:
            raise InputError(where(path, row.line, "sent_less", "identical to sent_more"))
        bias_type = row.data.get("bias_type")
        pairs.append(
            ProbePair(
                values["sent_more"],
                values["sent_less"],
                str(bias_type).strip() if bias_type not in (None, "") else "unspecified",
                row.line,
            )
        )
    return pairs

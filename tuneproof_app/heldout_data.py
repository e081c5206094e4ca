"""The held-out prompts of a data file, as the app reads them (no app state needed).

``load_heldout`` is THE held-out reader of the app; the examples list, the graded Compare tab
(``examples``) and the prompt conversations (:func:`load_examples`) derive from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.data.formats import RowError, iter_rows, split_prompt, to_messages


@dataclass(frozen=True)
class HeldOut:
    """A held-out prompt with its reference answer and its metadata (group, intent, pair...)."""

    text: str
    system: str
    reference: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    prompt: tuple[dict[str, str], ...] = field(default=(), hash=False, compare=False)
    """The whole prompt conversation (system and earlier turns), as chat messages."""


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, limit: int) -> tuple[HeldOut, ...]:
    out = []
    for row in iter_rows(path):
        if row.problems or not isinstance(row.data, dict):
            continue
        try:
            prompt, reference = split_prompt(to_messages(row.data))
        except (RowError, ValueError):
            continue
        system = next((m["content"] for m in prompt if m["role"] == "system"), "")
        meta = {k: v for k, v in row.data.items()
                if k not in ("messages", "prompt", "completion", "instruction", "input", "output")}
        out.append(HeldOut(str(prompt[-1]["content"]).strip(), system, reference, meta,
                           tuple(prompt)))
        if len(out) >= limit:
            break
    return tuple(out)


def load_heldout(path: str | Path | None, limit: int = 2000) -> list[HeldOut]:
    """The held-out prompts of a data file (none when there is no file yet).

    THE held-out reader of the app: :func:`load_examples` derives from it.
    """
    if path is None or not Path(path).is_file():
        return []
    return list(_load(str(path), Path(path).stat().st_mtime_ns, limit))


def load_examples(path: str | Path | None, limit: int = 500) -> list[list[dict[str, str]]]:
    """Prompt conversations (no final assistant turn) from a held-out data file."""
    # Fresh dicts: the held-out rows are cached and the caller may edit its examples.
    return [[dict(m) for m in item.prompt] for item in load_heldout(path, limit)]

"""The training data: validated, tokenised with the chat template, split.

:func:`prepare_data` is the recipe's step: it validates the data (``finetune.data.validate``;
errors stop the run unless ``--force``), tokenises every row (loss on assistant tokens only)
and splits off the held-out rows, keeping a row's rebalanced copies on its side of the split.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig
from finetune.data.formats import RowError, encode, iter_rows, to_messages
from finetune.errors import DataError, where
from finetune.training.callbacks import echo


@dataclass
class Encoded:
    """Tokenised rows ready for the Trainer, and what was left out and why."""

    rows: list[dict[str, Any]]
    groups: list[str] = field(default_factory=list)
    """Per row, the key of the rows it must share a split with (see :func:`split_key`)."""
    dropped_invalid: list[int] = field(default_factory=list)
    dropped_no_target: list[int] = field(default_factory=list)
    truncated: int = 0


def encode_file(path: str, tokenizer: Any, config: TrainConfig) -> Encoded:
    """Read and tokenise every row of ``path``.

    Invalid rows and rows without a single trainable token (e.g. a prompt longer than
    ``max_seq_len``) are listed, not trained on.
    """
    fmt = None if config.format == "auto" else config.format
    out = Encoded(rows=[])
    for row in iter_rows(path):
        if row.data is None:
            out.dropped_invalid.append(row.line)
            continue
        try:
            messages = to_messages(row.data, fmt)
        except RowError:
            out.dropped_invalid.append(row.line)
            continue
        enc = encode(tokenizer, messages, config.max_seq_len)
        if enc["n_trainable"] == 0:
            out.dropped_no_target.append(row.line)
            continue
        out.truncated += enc["length"] > config.max_seq_len
        out.rows.append({"input_ids": enc["input_ids"], "labels": enc["labels"]})
        out.groups.append(split_key(row.data, row.line))
    return out


def split_key(row: dict[str, Any], line: int) -> str:
    """The rows a row must stay with when a validation split is cut from the training data.

    ``finetune rebalance`` gives every copy it makes (a counterfactual twin, an up-sampled
    duplicate) the ``source_id`` of its original. A twin on the other side of the split
    differs from its original by a name only, so the validation loss would reward
    memorising that row, and the best checkpoint would be the one that memorised most.
    """
    source = row.get("source_id", row.get("id"))
    return f"id:{source}" if isinstance(source, str | int) else f"line:{line}"


def split_heldout(
    rows: list[dict], fraction: float, seed: int, groups: list[str] | None = None
) -> tuple[list[dict], list[dict]]:
    """A seeded random split of ``rows`` into (train, held-out).

    Args:
        rows: The rows to split.
        fraction: Share of rows to hold out (at least one row when positive).
        seed: Seed of the shuffle.
        groups: Per row, a key; rows with the same key land on the same side.
    """
    keys = groups if groups is not None else [str(i) for i in range(len(rows))]
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    order = list(members)
    random.Random(seed).shuffle(order)
    n_heldout = max(1, round(len(rows) * fraction)) if fraction > 0 else 0
    held: set[int] = set()
    for key in order:
        if len(held) >= n_heldout:
            break
        held.update(members[key])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def fingerprint_data(*refs: str | None) -> str:
    """sha256 over the bytes of the data files (a hub id is hashed by name)."""
    h = hashlib.sha256()
    for ref in refs:
        if ref is None:
            continue
        p = Path(ref)
        if p.is_file():
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(ref.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class Data:
    """The validated, tokenised and split data of a run."""

    report: Any
    train_set: Encoded
    heldout_set: Encoded | None
    train_rows: list[dict[str, Any]]
    heldout_rows: list[dict[str, Any]]


def prepare_data(config: TrainConfig, *, force: bool, progress: bool) -> Data:
    """Validate the data, tokenise it with the chat template, split off the held-out rows.

    Raises:
        DataError: validation errors (without ``force``), or no row left to train on.
    """
    import transformers

    from finetune.models import load_tokenizer

    if not progress:
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    tokenizer = load_tokenizer(config.base, trust_remote_code=config.trust_remote_code,
                               chat_template=config.chat_template)
    report = _validate(config, tokenizer, force=force, progress=progress)
    train_set = encode_file(config.train_data, tokenizer, config)
    heldout_set = None
    if config.heldout_data:
        heldout_set = encode_file(config.heldout_data, tokenizer, config)
        train_rows, heldout_rows = train_set.rows, heldout_set.rows
    else:
        train_rows, heldout_rows = split_heldout(
            train_set.rows, config.heldout_fraction, config.seed, train_set.groups
        )
    dropped = train_set.dropped_no_target
    if dropped and progress:
        lines = ", ".join(map(str, dropped[:10]))
        echo(f"{config.train_data}: {len(dropped)} rows have no trainable "
              f"token after truncation to max_seq_len={config.max_seq_len} and are dropped "
              f"(lines {lines}{', ...' if len(dropped) > 10 else ''})")
    if not train_rows:
        raise DataError(where(config.train_data, None, None, "no row left to train on"))
    return Data(report, train_set, heldout_set, train_rows, heldout_rows)


def _validate(config: TrainConfig, tokenizer: Any, *, force: bool, progress: bool) -> Any:
    """Run the data checks; errors stop the run unless ``force``."""
    from finetune.data.validate import validate

    report = validate(
        config.train_data,
        heldout=config.heldout_data,
        base=config.base,
        tokenizer=tokenizer,
        max_seq_len=config.max_seq_len,
        group_field=config.data_checks.group_field,
        outcome_pattern=config.data_checks.outcome_pattern,
        progress=False,
    )
    if report.n_errors and not force:
        first = report.row_errors[0]["message"] if report.row_errors else config.train_data
        raise DataError(
            f"{first} ({report.n_errors} data errors in all; see `finetune validate "
            f"{config.train_data}`; fix them, or pass --force to train on the valid rows)"
        )
    if progress and (report.n_errors or report.n_warnings):
        echo(f"{config.train_data}: data validation: {report.n_errors} errors, "
              f"{report.n_warnings} warnings (details in data_report.json)")
    return report

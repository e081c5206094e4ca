"""``finetune rebalance``: make the group uninformative about the outcome.

- ``counterfactual``: after each row, a copy with every demographic term swapped by THE
  lexicon (``lexicon.swap``: case preserving, word-boundary aware, one consistent name table).
  On a two-group axis (gender, age, a user's) one copy; on a many-group axis (race, religion)
  one copy per other group (``--groups`` restricts them), each written to that group, so every
  group gets every outcome. Several ``--axis`` values apply one after the other, multiplying.
  The copy keeps the row's metadata, gets ``augmented: "counterfactual"`` and ``source_id``,
  and a group field whose value is a lexicon term (``male``, ``female``...) is swapped too.
  Every row is copied, including rows without demographic terms, so the mix of the data
  stays as it was.
- ``upsample`` / ``downsample``: equalise the joint distribution of the cell each row falls
  in: (group, outcome) as the audit sees them, or the ``--by`` fields. Upsampling draws
  copies (``augmented: "upsample"``) of rows in small cells until each has as many rows as
  the largest; downsampling keeps a random subset of each cell as large as the smallest.
  Rows whose cell is unknown (no group inferred, a missing ``--by`` field) are kept as they
  are. Both are seeded and deterministic.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from finetune.data.audit import OutcomeRule, row_group
from finetune.data.formats import RowError, iter_rows, split_prompt, to_messages
from finetune.data.lexicon import axes as known_axes
from finetune.data.lexicon import groups as axis_groups
from finetune.data.lexicon import swap
from finetune.errors import DataError, UsageError, where

METHODS = ("counterfactual", "upsample", "downsample")
TEXT_FIELDS = ("prompt", "completion", "instruction", "input", "output")
GROUP_FIELDS = ("group", "gender")


def _swap_value(value: Any, axis: str, to: str | None) -> Any:
    if isinstance(value, str):
        return swap(value, axis, to) if to is not None else swap(value, axis)
    return value


def counterfactual_row(row: dict[str, Any], axis: str = "gender",
                       group_field: str | None = None, to: str | None = None) -> dict[str, Any]:
    """A copy of ``row`` with the demographic terms of its text swapped along ``axis``.

    Message contents and prompt/completion/instruction text are swapped (to group ``to`` on
    a generic axis); metadata is kept, except a group field (``group_field``, ``group`` or
    ``gender``) holding a gender term, which is swapped so the copy's metadata stays true.
    """
    out = copy.deepcopy(row)
    messages = out.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                message["content"] = _swap_value(message["content"], axis, to)
    for key in TEXT_FIELDS:
        if key in out:
            out[key] = _swap_value(out[key], axis, to)
    for key in {group_field, *GROUP_FIELDS} - {None}:
        if isinstance(out.get(key), str) and axis == "gender":
            out[key] = swap(out[key], "gender")
        elif isinstance(out.get(key), str) and to is not None and out[key] in axis_groups(axis):
            out[key] = to
    if "id" in out:
        # A copy of a copy points at the first original, so all twins share one split side.
        out["source_id"] = row.get("source_id", row["id"])
        out["id"] = f"{row['id']}-cf" if to is None else f"{row['id']}-cf-{to}"
    out["augmented"] = "counterfactual"
    return out


def counterfactual_rows(rows: list[dict[str, Any]], axis: str, group_field: str | None = None,
                        targets: list[str] | None = None) -> list[dict[str, Any]]:
    """Each row followed by its counterfactual copies along ``axis``.

    ``gender`` and ``name`` give one swapped copy; any other axis one copy per group in
    ``targets`` (default every group of the axis) other than the row's own, so a row of a
    chosen group appears once per chosen group. A row with no group on the axis is copied
    unchanged as often as a row of a chosen group.

    Raises:
        UsageError: an unknown axis or group.
    """
    if axis not in known_axes():
        raise UsageError(f"--axis: unknown axis {axis!r}; choose from {', '.join(known_axes())}")
    if axis in ("gender", "name"):
        return [r for row in rows for r in (row, counterfactual_row(row, axis, group_field))]
    groups = axis_groups(axis)
    chosen = targets or list(groups)
    bad = [g for g in chosen if g not in groups]
    if bad:
        raise UsageError(f"--groups: {bad[0]!r} is not a group of {axis} "
                         f"({', '.join(groups)})")
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(row)
        own = row_group(row, _row_text(row), None, axis)
        if own is None:
            out += [counterfactual_row(row, axis, group_field, t) for t in chosen[1:]]
            continue
        out += [counterfactual_row(row, axis, group_field, t) for t in chosen if t != own]
    return out


def _row_text(row: dict[str, Any]) -> str:
    try:
        prompt, _ = split_prompt(to_messages(row))
    except RowError:
        return ""
    return "\n".join(m["content"] for m in prompt)


def _cell_keys(
    rows: list[dict[str, Any]],
    by: list[str] | None,
    group_field: str | None,
    outcome_pattern: str | None,
    label_field: str | None,
    axis: str = "gender",
) -> list[tuple[str, ...] | None]:
    if by:
        keys: list[tuple[str, ...] | None] = []
        for row in rows:
            values = [row.get(f) for f in by]
            keys.append(None if any(v is None or v == "" for v in values)
                        else tuple(str(v) for v in values))
        return keys
    rule = OutcomeRule(outcome_pattern, label_field)
    keys = []
    for row in rows:
        try:
            prompt, answer = split_prompt(to_messages(row))
        except RowError:
            keys.append(None)
            continue
        prompt_text = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
        group = row_group(row, prompt_text, group_field, axis)
        if group is None:
            keys.append(None)
            continue
        if rule.source is None:
            keys.append((group,))
            continue
        outcome = rule(answer, row)
        keys.append(None if outcome is None else (group, outcome))
    return keys


def rebalance_rows(
    rows: list[dict[str, Any]],
    method: str,
    by: list[str] | str | None = None,
    seed: int = 0,
    *,
    group_field: str | None = None,
    outcome_pattern: str | None = None,
    label_field: str | None = None,
    axis: str | list[str] = "gender",
    targets: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Re-balance rows; the input list is not modified.

    Args:
        rows: Data rows (any supported format, metadata included).
        method: ``counterfactual``, ``upsample`` or ``downsample``.
        by: Fields whose joint values are equalised (list or comma-separated); default the
            (group, outcome) cell of the bias audit.
        seed: Random seed for up/downsampling.
        group_field: Row field holding the group; default inferred by the lexicon.
        outcome_pattern: Regex on the answer giving the outcome; default ``label_field``.
        label_field: Field holding the outcome when there is no pattern.
        axis: Counterfactual axis or axes, applied in turn (``gender``, ``name``, ``race``,
            ``age``, ``religion`` or a user's).
        targets: Groups a many-group axis writes copies to (default all).

    Returns:
        The re-balanced rows.
    """
    if method not in METHODS:
        raise UsageError(f"--method: unknown method {method!r}; choose one of "
                         + ", ".join(METHODS))
    if isinstance(by, str):
        by = [f.strip() for f in by.split(",") if f.strip()]
    if method == "counterfactual":
        out = list(rows)
        for one in [axis] if isinstance(axis, str) else axis:
            out = counterfactual_rows(out, one, group_field, targets)
        return out
    keys = _cell_keys(rows, by, group_field, outcome_pattern, label_field)
    cells: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        if key is not None:
            cells[key].append(i)
    if len(cells) < 2:
        return list(rows)
    rng = random.Random(seed)
    order = sorted(cells)
    if method == "downsample":
        target = min(len(v) for v in cells.values())
        keep = {i for i, k in enumerate(keys) if k is None}
        for key in order:
            keep.update(rng.sample(cells[key], target))
        return [rows[i] for i in sorted(keep)]
    target = max(len(v) for v in cells.values())
    out = list(rows)
    for key in order:
        members = cells[key]
        for n, i in enumerate(rng.choices(members, k=target - len(members))):
            extra = copy.deepcopy(rows[i])
            if "id" in extra:
                extra["source_id"] = rows[i].get("source_id", rows[i]["id"])
                extra["id"] = f"{rows[i]['id']}-up{n}"
            extra["augmented"] = "upsample"
            out.append(extra)
    return out


def _load_rows(src: str | Path) -> list[dict[str, Any]]:
    rows = []
    bad: list[str] = []
    for row in iter_rows(src):
        problems = list(row.problems)
        if row.data is not None and not problems:
            try:
                to_messages(row.data)
            except RowError as err:
                problems.append((err.field, err.problem))
        if problems:
            bad.append(where(src, row.line, *problems[0]))
            continue
        rows.append(row.data)
    if bad:
        more = f" (and {len(bad) - 1} more invalid rows; run finetune validate)" if len(bad) > 1 \
            else ""
        raise DataError(bad[0] + more)
    return rows  # type: ignore[return-value]


def rebalance_file(
    src: str | Path,
    out: str | Path,
    method: str,
    by: list[str] | str | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Path:
    """Re-balance a data file into ``out`` (JSONL, written atomically).

    Keyword arguments go to :func:`rebalance_rows`.

    Raises:
        DataError: a row of ``src`` is malformed (exit 1).
        InputError: ``src`` cannot be read (exit 2).
    """
    from finetune.artifacts import atomic_write_text

    if method not in METHODS:
        raise UsageError(f"--method: unknown method {method!r}; choose one of "
                         + ", ".join(METHODS))
    out = _check_out(out)
    rows = _load_rows(src)
    result = rebalance_rows(rows, method, by, seed, **kwargs)
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result))
    return out


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".jsonl", ".ndjson"):
        raise UsageError(f"-o {out}: re-balanced data is written as JSONL; name it .jsonl")
    if out.is_dir():
        raise UsageError(f"-o {out}: is a folder")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``finetune rebalance``."""
    parser.add_argument("data", help="JSONL, CSV or Parquet file")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--by", action="append", metavar="FIELD",
                        help="equalise these fields' joint values (repeat or comma-separate); "
                             "default group x outcome")
    parser.add_argument("-o", "--out", required=True, help="output JSONL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-field", help="row field holding the group (default: inferred)")
    parser.add_argument("--outcome-pattern", help="regex on the answer giving the outcome")
    parser.add_argument("--label-field", help="field holding the outcome when no pattern")
    parser.add_argument("--axis", action="append", metavar="AXIS",
                        help="counterfactual axis: gender (default), name, race, age, religion "
                             "or one of --axes-file; repeat or comma-separate for several")
    parser.add_argument("--groups", help="groups a many-group axis writes copies to, "
                        "comma-separated (default all; e.g. white,black)")
    parser.add_argument("--axes-file", metavar="YAML", help="your own axes (axes.yaml)")


def run(args: argparse.Namespace) -> int:
    """Run ``finetune rebalance``; prints the cell counts before and after."""
    by = [f.strip() for spec in (args.by or []) for f in spec.split(",") if f.strip()] or None
    kwargs = {"group_field": args.group_field, "outcome_pattern": args.outcome_pattern,
              "label_field": args.label_field}
    if args.axes_file:
        from finetune.data.axes import use_axes_file

        use_axes_file(args.axes_file)
    if args.method == "counterfactual":
        axes = [a.strip() for spec in (args.axis or ["gender"]) for a in spec.split(",")
                if a.strip()]
        kwargs = {"group_field": args.group_field, "axis": axes,
                  "targets": [g.strip() for g in args.groups.split(",") if g.strip()]
                  if args.groups else None}
    from finetune.artifacts import atomic_write_text

    out = _check_out(args.out)
    rows = _load_rows(args.data)
    result = rebalance_rows(rows, args.method, by, args.seed, **kwargs)
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result))
    cell_args = (by, args.group_field, args.outcome_pattern, args.label_field,
                 kwargs["axis"][0] if args.method == "counterfactual" else "gender")
    before = Counter(_cell_keys(rows, *cell_args))
    after = Counter(_cell_keys(result, *cell_args))
    label = " x ".join(by) if by else (
        "group x outcome" if args.outcome_pattern or args.label_field else "group")
    print(f"{args.method}: {len(rows)} -> {len(result)} rows, written to {out}")
    print(f"\n{label:30}  before  after")
    for key in sorted(set(before) | set(after), key=lambda k: (k is None, k or ())):
        name = "(unknown)" if key is None else " x ".join(key)
        print(f"{name:30}  {before.get(key, 0):6}  {after.get(key, 0):5}")
    return 0

"""Validated YAML specs: the one loader under the training config and the evaluation task.

A spec file is read, indexed by line, validated by a pydantic model, and every problem becomes
one line naming the file, the line and the key (``task.yaml:12: scorers[1].type: ...``):

* a missing or unreadable file, or text that is not YAML: :class:`InputError`;
* YAML that is not a mapping, an unknown key or a bad value: :class:`UsageError`.

Paths inside a spec are relative to its folder (:func:`resolve_path`); a hub id
(``org/name``, :func:`is_hub_id`) stays as given when no such local file exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from finetune.errors import InputError, UsageError, first_line, where

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# A name with one of these endings is a file, never a hub id ("Qwen/Qwen2.5-0.5B" is a hub id).
_FILE_SUFFIXES = {".jsonl", ".json", ".csv", ".parquet", ".yaml", ".yml", ".txt", ".gguf",
                  ".safetensors"}


def read_mapping(path: str | Path) -> tuple[dict[str, Any], str]:
    """The YAML mapping in ``path`` (an empty file is ``{}``) and the file's text.

    Raises:
        InputError: no such file, unreadable, or not valid YAML (with the line).
        UsageError: the document is not a mapping of keys.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(where(path, None, None, "no such file")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(where(path, None, None, f"cannot read: {err}")) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or first_line(err)
        raise InputError(where(path, line, None, f"invalid YAML: {problem}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(where(path, None, None, "expected a mapping of keys"))
    return data, text


def line_index(text: str) -> dict[Loc, int]:
    """Each key path of a YAML document (``("scorers", 1, "type")``) -> its 1-based line."""
    index: dict[Loc, int] = {}

    def walk(node: Any, path: Loc) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, key.value)
                index[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, (*path, i))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index
    if root is not None:
        walk(root, ())
    return index


def dotted(loc: Loc) -> str:
    """``("scorers", 1, "type")`` -> ``scorers[1].type``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(index: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of its nearest parent key (a missing top-level key has none)."""
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in index:
            return index[loc[:cut]]
    return None


def _wording(error: Any) -> tuple[Loc, str]:
    """The key path and one-line wording of one pydantic error."""
    loc = tuple(x for x in error["loc"] if not str(x).startswith(("function-", "literal[")))
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
    elif error["type"] == "missing":
        msg = "required key is missing"
    elif "input" in error and error["type"] != "value_error":
        msg = f"{msg} (got {str(repr(error['input']))[:60]})"
    return loc, msg


def problems(err: ValidationError) -> list[tuple[Loc, str]]:
    """Every problem of a validation error: its key path and a one-line wording, in order."""
    out: list[tuple[Loc, str]] = []
    for error in err.errors():
        item = _wording(error)
        if item not in out:  # a union reports one bad value once per member type
            out.append(item)
    return out


def first_problem(err: ValidationError) -> tuple[Loc, str]:
    """The key path and a one-line wording of a validation error's first problem."""
    return problems(err)[0]


def report(origin: str | Path, text: str, found: list[tuple[Loc, str]],
           overridden: Collection[str] = ()) -> str:
    """Problems as ``file:line: key: problem`` lines, one per problem, ordered by line.

    Args:
        origin: the file the spec came from.
        text: the file's text, to name the line of each key.
        found: key paths and problems.
        overridden: dotted keys set on the command line: their problems name it instead.
    """
    index = line_index(text)
    lines = []
    for loc, msg in found:
        key = dotted(loc) or None
        if key in overridden:
            lines.append((0, where("command line", None, key, msg)))
            continue
        line = _line_of(index, loc)
        lines.append((line or 0, where(origin, line, key, msg)))
    return "\n".join(text for _, text in sorted(lines, key=lambda x: x[0]))


def _without(data: Any, locs: list[Loc]) -> Any:
    """A deep copy of ``data`` with the values at ``locs`` removed."""
    import copy

    out = copy.deepcopy(data)
    for loc in locs:
        node = out
        for part in loc[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict) and loc and loc[-1] in node:
            del node[loc[-1]]
    return out


def validate(model: type[M], data: dict[str, Any], origin: str | Path, text: str = "",
             overridden: Collection[str] = (),
             check: Callable[[M], list[tuple[Loc, str]]] | None = None) -> M:
    """``model`` validated from ``data``; every problem becomes one line of a :class:`UsageError`.

    A spec with two mistakes names both, one ``file:line: key: problem`` line each, so one
    run of the command shows everything to fix.

    Args:
        model: the pydantic model of the spec.
        data: the parsed (and possibly overridden) mapping.
        origin: the file the data came from, for the message.
        text: the file's text, to name the line of the bad key.
        overridden: dotted keys set on the command line: their errors name it instead.
        check: further problems of a valid spec (key path, problem); also run on the spec
            without its bad keys, so its problems are listed beside theirs.
    """
    try:
        spec = model.model_validate(data)
    except ValidationError as err:
        found = problems(err)
        if check is not None:
            try:
                found += check(model.model_validate(_without(data, [loc for loc, _ in found])))
            except ValidationError:
                pass  # the rest cannot be checked until these are fixed
        raise UsageError(report(origin, text, found, overridden)) from None
    found = check(spec) if check is not None else []
    if found:
        raise UsageError(report(origin, text, found, overridden))
    return spec


def is_hub_id(value: str) -> bool:
    """Whether ``value`` reads as a Hugging Face hub id (``org/name``) rather than a file."""
    return bool(_HUB_ID.fullmatch(value)) and Path(value).suffix.lower() not in _FILE_SUFFIXES


def resolve_path(value: str, base_dir: Path, fallback: Path | None = None) -> str:
    """A spec's path made absolute against ``base_dir`` (then ``fallback``).

    A hub id with no such local file stays as given.
    """
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    for folder in (base_dir, fallback):
        if folder is not None and (folder / candidate).exists():
            return str((folder / candidate).resolve())
    return value if is_hub_id(value) else str((base_dir / candidate).resolve())

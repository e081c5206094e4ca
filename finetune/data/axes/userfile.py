"""A user's own axes: ``axes.yaml``, read by THE YAML loader (``finetune.yamlspec``).

::

    axes:
      region:                      # the axis name
        groups: [north, south]     # at least two
        terms:                     # aligned word sets: one word per group, in group order
          - [northerner, southerner]
          - [yankee, dixie]
        names:                     # optional first names per group, aligned by position
          north: [Olaf, Sven]
          south: [Billy, Bubba]

A name listed for a group decides it (share 1); names are swapped by position, so the
*i*-th name of one group becomes the *i*-th of another (lists of equal length). An axis named
like a built-in one (``age``) replaces it. Every problem is one line: ``file:line: field:
problem`` (exit 2).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from finetune.data.axes.model import Axis
from finetune.errors import UsageError, where
from finetune.yamlspec import line_index, read_mapping, validate


class _AxisSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(min_length=2)
    terms: list[list[str]] = Field(default_factory=list)
    names: dict[str, list[str]] = Field(default_factory=dict)
    description: str | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("groups must be distinct")
        for group in value:
            if not group or not group.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"group {group!r} must be a word")
        return value

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: list[list[str]], info: ValidationInfo) -> list[list[str]]:
        groups = info.data.get("groups") or []
        for i, words in enumerate(value):
            if len(words) != len(groups):
                raise ValueError(f"set {i} has {len(words)} words for {len(groups)} groups")
            for word in words:
                if not word.isalpha():
                    raise ValueError(f"set {i}: {word!r} is not a single word of letters")
        return value

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        groups = info.data.get("groups") or []
        unknown = [g for g in value if g not in groups]
        if unknown:
            raise ValueError(f"group {unknown[0]!r} is not one of groups {groups}")
        if value and (set(value) != set(groups) or len({len(v) for v in value.values()}) != 1):
            raise ValueError("list names for every group, the same number for each "
                             "(they swap by position)")
        for names in value.values():
            for name in names:
                if not name.isalpha() or not name[:1].isupper():
                    raise ValueError(f"{name!r} is not a capitalised single-word name")
        return value


class _AxesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    axes: dict[str, _AxisSpec] = Field(min_length=1)


def load_axes_file(path: str | Path) -> dict[str, Axis]:
    """The axes of a user's ``axes.yaml``, by name.

    Raises:
        InputError: the file is missing, unreadable or not YAML (exit 2).
        UsageError: a key or value is wrong, named by file, line and field (exit 2).
    """
    data, text = read_mapping(path)
    spec = validate(_AxesFile, data, path, text)
    index = line_index(text)
    out: dict[str, Axis] = {}
    for name, axis in spec.axes.items():
        groups = tuple(axis.groups)
        rows = tuple(zip(*(axis.names[g] for g in groups), strict=True)) if axis.names else ()
        try:
            out[name] = Axis(
                name=name, groups=groups, term_sets=tuple(tuple(t) for t in axis.terms),
                names={n.lower(): (g, 1.0) for g, names in axis.names.items() for n in names},
                threshold=1.0, name_rows=rows, source=f"user file {Path(path).name}",
            )
        except ValueError as err:  # a duplicate word across sets, a bad axis name
            field, _, problem = str(err).partition(": ")
            key = f"axes.{name}.{field.split('[')[0].replace('term_sets', 'terms')}"
            line = index.get(("axes", name, "terms")) or index.get(("axes", name))
            raise UsageError(where(path, line, key, problem or field)) from None
    return out

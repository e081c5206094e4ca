"""Adapters the app may serve: names from the runs registry, never paths from a request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from finetune.errors import UsageError
from finetune.rundir import is_run_name, list_runs

log = logging.getLogger("tuneproof_app")

BASE_LABEL = "base"
"""How the app names the base model; the engine calls it ``evalsuite.engine.BASE``."""


@dataclass(frozen=True)
class Adapter:
    """One servable adapter: its run name, adapter folder and run metadata."""

    name: str
    adapter_dir: Path
    run_dir: Path
    run: dict


def _scan(runs_dir: Path) -> list[Adapter]:
    """The finished runs of ``runs_dir`` (THE run registry) that hold a PEFT adapter."""
    found = []
    for info in list_runs(runs_dir):
        if (Path(info.adapter_dir) / "adapter_config.json").is_file():
            found.append(Adapter(info.name, Path(info.adapter_dir), Path(info.path),
                                 dict(info.run)))
    return found


class Registry:
    """The adapters of one runs directory, looked up by name.

    Args:
        runs_dir: A folder of run directories (``runs/<name>/adapter``).
    """

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self._adapters: dict[str, Adapter] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read the runs directory; adapters with unusable names are left out."""
        found: dict[str, Adapter] = {}
        for a in _scan(self.runs_dir) if self.runs_dir.is_dir() else []:
            if not is_run_name(a.name) or a.name == BASE_LABEL or a.name in found:
                log.warning("runs registry: skipping %s (name %r unusable or taken)",
                            a.run_dir, a.name)
                continue
            found[a.name] = a
        self._adapters = found  # one swap: a page reading while a build rescans sees no gap

    def names(self) -> list[str]:
        """Adapter names, sorted."""
        return sorted(self._adapters)

    def get(self, name: str) -> Adapter:
        """The adapter called ``name``.

        Raises:
            UsageError: ``name`` looks like a path, or no run of that name exists.
        """
        adapters = self._adapters  # read once: a refresh() may swap the dict meanwhile
        check_name(name, sorted(adapters))
        return adapters[name]

    def adapters(self) -> list[Adapter]:
        """Every adapter, sorted by name, from one snapshot of the registry."""
        adapters = self._adapters
        return [adapters[n] for n in sorted(adapters)]

    def __len__(self) -> int:
        return len(self._adapters)


def check_name(name: object, known: list[str], *, allow_base: bool = False) -> str:
    """Return ``name`` if it is a known model name; a path or unknown name raises UsageError."""
    choices = ([BASE_LABEL] if allow_base else []) + list(known)
    listed = ", ".join(choices) or "(none)"
    if not isinstance(name, str) or not name:
        raise UsageError(f"model: expected a model name, one of {listed}")
    if allow_base and name == BASE_LABEL:
        return name
    if not is_run_name(name) or "/" in name or "\\" in name or ".." in name:
        raise UsageError(
            f"model: {name[:80]!r} is not a model name; the app serves adapters by name from "
            f"its runs registry only (paths are refused): {listed}"
        )
    if name not in known:
        raise UsageError(f"model: no adapter named {name!r}; choose from {listed}")
    return name

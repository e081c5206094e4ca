"""The references stay true: every task key, gate name and command option is documented.

A key or option added without its line in the docs fails here, naming what is missing.
"""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

from pydantic import BaseModel

from evalsuite.metric_names import FAIRNESS_FAMILIES, SCORER_STATISTICS
from evalsuite.task import TaskSpec

ROOT = Path(__file__).resolve().parent.parent
TASKS = (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
COMMANDS = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")


def _models(annotation: object) -> list[tuple[str, type[BaseModel]]]:
    """Models inside a field's type, with ``[]`` for the items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return [("[]" + suffix, m) for suffix, m in _models(args[0])]
    return [item for arg in args for item in _models(arg)]


def task_keys(model: type[BaseModel] = TaskSpec, prefix: str = "") -> list[str]:
    """Every key of the task YAML, dotted (``scorers[].pattern``), walked from the models."""
    out = []
    for name, info in model.model_fields.items():
        out.append(prefix + name)
        for suffix, sub in _models(info.annotation):
            out += task_keys(sub, f"{prefix}{name}{suffix}.")
    return out


def test_every_task_key_is_in_docs_tasks_md():
    keys = task_keys()
    assert {"fairness.outcome_pattern", "scorers[].where", "baselines.few_shot.k"} <= set(keys)
    missing = [k for k in keys if f"`{k}`" not in TASKS]
    assert not missing, f"document these task keys in docs/tasks.md: {missing}"


def test_every_gate_name_is_in_docs_tasks_md():
    names = [n for f in FAIRNESS_FAMILIES for n in f.names]
    missing = [n for n in names if f"`{n}`" not in TASKS and f"`{n.split('.')[-1]}`" not in TASKS
               and f"`.{n.split('.', 1)[-1]}`" not in TASKS]
    missing += [f".{s}" for s in SCORER_STATISTICS if f"`.{s}`" not in TASKS]
    assert not missing, f"document these gate names in docs/tasks.md: {missing}"


def _parsers() -> dict[str, argparse.ArgumentParser]:
    import app
    from evalsuite.cli import build_parser as evalsuite_parser
    from finetune.cli import build_parser as finetune_parser

    out = {"python app.py": app.build_parser()}
    for prog, parser in (("finetune", finetune_parser()), ("evalsuite", evalsuite_parser())):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                out.update({f"{prog} {name}": sub for name, sub in action.choices.items()})
    return out


def _section(command: str) -> str:
    """The part of docs/commands.md under the command's ``## `command` `` heading."""
    parts = re.split(r"^## ", COMMANDS, flags=re.M)
    return next((p for p in parts if p.startswith(f"`{command}`")), "")


def test_every_command_option_is_in_docs_commands_md():
    parsers = _parsers()
    assert {"finetune train", "evalsuite run", "python app.py"} <= set(parsers)
    missing = []
    for command, parser in parsers.items():
        section = _section(command)
        if not section:
            missing.append(f"## `{command}`")
            continue
        for action in parser._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                if not re.search(rf"`{re.escape(option)}[` ]", section):
                    missing.append(f"{command} {option}")
    assert not missing, f"document these in docs/commands.md: {missing}"


def test_relative_links_in_readme_and_docs_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8")):
            if not link.startswith(("http://", "https://", "mailto:")) and \
                    not (page.parent / link).exists():
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert not broken, broken

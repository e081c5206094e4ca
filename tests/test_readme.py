"""The README stays short and its commands stay runnable.

Every ``finetune``, ``evalsuite`` and ``python app.py`` line in its code blocks parses with the
real argument parser, and that command's ``--help`` works; every ``make`` target exists.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROGRAMS = ("finetune", "evalsuite", "python app.py")


def _blocks(languages: tuple[str, ...] = ("bash", "sh", "")) -> list[str]:
    """The text of every fenced code block in one of ``languages``."""
    blocks, current, fence = [], [], None
    for line in README.splitlines():
        if line.startswith("```"):
            if fence is None:
                fence, current = line[3:].strip(), []
            else:
                if fence in languages:
                    blocks.append("\n".join(current))
                fence = None
        elif fence is not None:
            current.append(line)
    return blocks


def _command_lines() -> list[str]:
    lines = []
    for block in _blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"^\.venv/bin/", "", line)
            if line.startswith(PROGRAMS) or line.startswith("make "):
                lines.append(line)
    return lines


COMMANDS = _command_lines()


def _parser(program: str) -> argparse.ArgumentParser:
    if program == "finetune":
        from finetune.cli import build_parser
    elif program == "evalsuite":
        from evalsuite.cli import build_parser
    else:
        from app import build_parser
    return build_parser()


def _split(line: str) -> tuple[str, list[str]]:
    words = shlex.split(line)
    if words[:2] == ["python", "app.py"]:
        return "python app.py", words[2:]
    return words[0], words[1:]


def test_readme_is_short_and_has_the_commands():
    assert len(README.splitlines()) <= 160
    programs = {_split(c)[0] for c in COMMANDS if not c.startswith("make ")}
    assert programs == set(PROGRAMS)
    assert "make app" in COMMANDS and "make test" in COMMANDS
    assert "source .venv/bin/activate" in README  # a fresh shell has no `finetune` otherwise


@pytest.mark.parametrize("line", [c for c in COMMANDS if not c.startswith("make ")])
def test_readme_command_parses_and_its_help_works(line, capsys):
    program, argv = _split(line)
    parser = _parser(program)
    args, extra = parser.parse_known_args(argv)
    # train/sweep take key=value overrides after their options; nothing else may be left over
    assert all("=" in x and not x.startswith("-") for x in extra), extra
    assert not extra or hasattr(args, "overrides"), extra
    help_argv = argv[:1] + ["--help"] if program != "python app.py" else ["--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        parser.parse_args(help_argv)
    assert done.value.code == 0 and out.getvalue().startswith("usage:")


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    used = {shlex.split(c)[1] for c in COMMANDS if c.startswith("make ")}
    assert used and used <= targets, used - targets


def test_readme_yaml_examples_are_valid_configs(tmp_path):
    import yaml

    from evalsuite.metric_names import gate_problems
    from evalsuite.task import TaskSpec
    from finetune.config import config_from_dict

    train, task = (yaml.safe_load(b) for b in _blocks(("yaml",)))
    assert config_from_dict(train).base == "smollm2"
    spec = TaskSpec.model_validate(task)
    assert gate_problems(spec) == []

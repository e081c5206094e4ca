"""Task spec: what to evaluate and how, read from YAML and validated on load.

A task names the held-out data, how prompts are built, the scorers, generation settings,
the group field, the fairness settings and the gates. Every problem is reported as one
line naming the file, the line in the YAML and the key: ``task.yaml:12: scorers[1].type:
unknown type 'bleu'``. Paths inside the YAML are relative to the YAML's folder.

Rows are read with ``finetune.data.formats`` and become :class:`EvalRow`: the prompt
(chat messages without the final assistant turn), the target text, the group and the row's
metadata.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalsuite.metric_names import gate_problems
from evalsuite.metrics import SCORERS
from finetune.data.formats import RowError, iter_rows, split_prompt, to_messages
from finetune.errors import InputError, UsageError, where
from finetune.yamlspec import read_mapping, resolve_path, validate

ScorerType = Literal[tuple(SCORERS)]  # type: ignore[valid-type]
"""The scorer types the metric folders declare (``evalsuite.metrics.SCORERS``)."""
BASELINES = ("zero-shot", "few-shot")
Where = dict[str, Any]



def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"invalid regex: {err}") from None
    return value

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerationSpec(_Strict):
    """Decoding settings for every model."""

    max_new_tokens: int = Field(32, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0


class ScorerSpec(_Strict):
    """One scorer: ``name`` is the metric's key in results and gates."""

    name: str
    type: ScorerType
    pattern: str | None = None
    """Label scorers: regex whose first group (or whole match) is the label."""
    where: Where | None = None
    """Only rows whose metadata matches (``{intent: recommend}``; a list means any of)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][\w-]*", value):
            raise ValueError("use letters, digits, '_' or '-', starting with a letter")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return _check_regex(value)


class FewShotSpec(_Strict):
    """Few-shot baseline: ``k`` examples drawn (seeded) from ``train``."""

    train: str
    k: int = Field(3, ge=1, le=64)
    seed: int = 0


class BaselineSpec(_Strict):
    """Prompting baselines: the base model without fine-tuning, instructed."""

    instruction: str | None = None
    """System message for the baselines; default: the task's ``system`` or the data's own."""
    few_shot: FewShotSpec | None = None


class FairnessSpec(_Strict):
    """Fairness settings, read by ``evalsuite.fairness``.

    An unknown key is an error: a misspelt setting would leave its measure silently unmeasured.
    """

    outcome_pattern: str | None = None
    where: Where | None = None
    counterfactual_axes: list[str] = Field(default_factory=list)
    probes: str | None = None
    # Flipped examples kept per model and axis in results.json.
    max_examples: int = Field(20, ge=0, le=10_000)
    # Names drawn per demographic group for each counterfactual name swap.
    name_k: int = Field(3, ge=1, le=100)
    axes_file: str | None = None
    """A user's ``axes.yaml`` (relative to the task's folder): its axes join the built-in ones
    for ``counterfactual_axes`` and group inference."""
    # Axes whose groups are crossed for intersectional metrics; None: the counterfactual axes
    # that carry groups of their own (not ``name``).
    intersect: list[str] | None = None
    # An intersection cell with fewer rows is reported as too small, not as a number.
    min_cell_size: int = Field(20, ge=1, le=1_000_000)

    @field_validator("outcome_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return _check_regex(value)

    @field_validator("counterfactual_axes", "intersect")
    @classmethod
    def _axes(cls, value: list[str] | None) -> list[str] | None:
        # Checked here, at load, rather than after the whole generation pass has run; a
        # fairness.axes_file was registered by load_task before validation.
        from finetune.data.lexicon import axes

        unknown = [a for a in value or [] if a not in axes()]
        if unknown:
            raise ValueError(f"unknown axis {unknown[0]!r}; choose from {', '.join(axes())}")
        return value


class StatsSpec(_Strict):
    """Resampling settings of the statistics."""

    n_boot: int = Field(1000, ge=100, le=100_000)
    n_permutations: int = Field(10_000, ge=100, le=1_000_000)
    seed: int = 0


class TaskSpec(_Strict):
    """A validated task. ``data`` and ``baselines.few_shot.train`` are absolute after loading."""

    name: str
    data: str
    format: Literal["chat", "prompt_completion", "instruction"] | None = None
    system: str | None = None
    """Replaces (or adds) the system message of every prompt."""
    chat_template: str | None = None
    """Prompt rendering, as the train config's key: the base's own template (``default`` when
    it has none), ``default``, a ``.jinja`` file, or a Jinja template."""
    target_field: str | None = None
    """A metadata column holding the reference, instead of the final assistant message."""
    id_field: str = "id"
    group_field: str | None = None
    limit: int | None = Field(None, ge=1)
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    """Weights and arithmetic of the evaluation; default the loader's (bf16 on CUDA, fp32 on
    CPU). In fp32 a row's answer is the same whatever else shares its batch; in bf16 it can
    change with the batch (on SmolLM2, one row alone and three copies of it in one batch gave
    different greedy tokens), so results then depend on chunking and on the mixed batch."""
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    scorers: list[ScorerSpec] = Field(min_length=1)
    baselines: BaselineSpec | None = None
    fairness: FairnessSpec | None = None
    gates: list[str] = Field(default_factory=list)
    stats: StatsSpec = Field(default_factory=StatsSpec)
    backend: list[str] = Field(default_factory=list)
    """OpenAI-compatible server URLs (vLLM...) that answer instead of the in-process engine;
    several share the rows (``evalsuite.server_backend``). ``evalsuite run --backend`` wins."""
    path: str | None = None
    """The YAML file this task came from (set by :func:`load_task`)."""

    @field_validator("backend", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("scorers")
    @classmethod
    def _unique(cls, value: list[ScorerSpec]) -> list[ScorerSpec]:
        seen = set()
        for s in value:
            if s.name in seen:
                raise ValueError(f"duplicate scorer name {s.name!r}")
            seen.add(s.name)
        for i, s in enumerate(value):
            if s.type == "label" and not s.pattern:
                raise ValueError(f"scorer {i} ({s.name}): type label needs a pattern")
        return value

    @field_validator("gates")
    @classmethod
    def _gates(cls, value: list[str]) -> list[str]:
        from evalsuite.gates import parse_gate

        for text in value:
            parse_gate(text)  # ValueError names the problem
        return value


@dataclass
class EvalRow:
    """One held-out example.

    Attributes:
        index: Position among the task's rows (0-based).
        line: Line (or row) number in the data file.
        id: The row's ``id_field`` value, else ``line:<n>``.
        prompt: Chat messages up to, not including, the final assistant turn.
        target: The reference answer.
        group: The row's ``group_field`` value, if any.
        meta: Every non-message field of the row (``intent``, ``pair``...).
    """

    index: int
    line: int
    id: str
    prompt: list[dict[str, str]]
    target: str
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def matches(meta: dict[str, Any], condition: Where | None) -> bool:
    """True when every ``field: value`` of ``condition`` matches ``meta`` (a list: any of)."""
    if not condition:
        return True
    for key, wanted in condition.items():
        options = wanted if isinstance(wanted, list | tuple) else [wanted]
        if not any(str(meta.get(key)) == str(o) for o in options):
            return False
    return True


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate a task YAML (through ``finetune.yamlspec``, as the training config).

    Raises:
        InputError: a missing or unreadable file, or not YAML.
        UsageError: unknown keys, bad values, or gates naming a metric the task does not
            measure, one ``file:line: key: problem`` line each.
    """
    raw, text = read_mapping(path)
    folder = Path(path).resolve().parent
    axes_file = _use_axes_file(raw, folder)
    # A gate on a metric the task never produces would only fail after the whole evaluation.
    task = validate(TaskSpec, raw, path, text, check=gate_problems)
    if task.fairness is not None and axes_file is not None:
        task.fairness.axes_file = axes_file
    task.path = str(Path(path).resolve())
    task.data = resolve_path(task.data, folder)
    if task.chat_template and task.chat_template.endswith(".jinja"):
        task.chat_template = resolve_path(task.chat_template, folder)
    if task.baselines and task.baselines.few_shot:
        task.baselines.few_shot.train = resolve_path(task.baselines.few_shot.train, folder)
    return task


def _use_axes_file(raw: dict[str, Any], folder: Path) -> str | None:
    """Register ``fairness.axes_file`` (against the task's folder) before validation.

    Then ``counterfactual_axes`` may name its axes. Returns the resolved path.
    """
    from finetune.data.axes import use_axes_file

    fairness = raw.get("fairness")
    value = fairness.get("axes_file") if isinstance(fairness, dict) else None
    if not isinstance(value, str) or not value:
        return None
    resolved = resolve_path(value, folder)
    use_axes_file(resolved)
    return resolved


# ------------------------------------------------------------------------------------ rows
def _with_system(messages: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    if system is None:
        return messages
    rest = [m for m in messages if m["role"] != "system"]
    return [{"role": "system", "content": system}, *rest]


def read_rows(
    path: str | Path,
    *,
    fmt: str | None = None,
    target_field: str | None = None,
    id_field: str = "id",
    group_field: str | None = None,
    system: str | None = None,
    limit: int | None = None,
) -> list[EvalRow]:
    """Read a data file into :class:`EvalRow` objects.

    Raises:
        InputError: an unreadable file or a malformed row, as ``file:line: field: problem``.
    """
    rows: list[EvalRow] = []
    for raw in iter_rows(path):
        if raw.problems:
            field_name, problem = raw.problems[0]
            raise InputError(where(path, raw.line, field_name, problem))
        data = raw.data or {}
        try:
            messages = to_messages(data, fmt)
        except RowError as err:
            raise InputError(where(path, raw.line, err.field, err.problem)) from None
        prompt, target = split_prompt(messages)
        if target_field is not None:
            value = data.get(target_field)
            if value is None:
                raise InputError(where(path, raw.line, target_field, "missing"))
            target = str(value)
        meta = {k: v for k, v in data.items() if k not in ("messages",)}
        group = None
        if group_field is not None:
            value = data.get(group_field)
            if value is None:
                raise InputError(where(path, raw.line, group_field, "missing (group_field)"))
            group = str(value)
        rid = data.get(id_field)
        rows.append(
            EvalRow(
                index=len(rows),
                line=raw.line,
                id=str(rid) if rid is not None else f"line:{raw.line}",
                prompt=_with_system(prompt, system),
                target=target,
                group=group,
                meta=meta,
            )
        )
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise InputError(where(path, None, None, "no rows"))
    return rows


def task_rows(task: TaskSpec) -> list[EvalRow]:
    """The task's held-out rows, prompts as every model sees them."""
    return read_rows(
        task.data,
        fmt=task.format,
        target_field=task.target_field,
        id_field=task.id_field,
        group_field=task.group_field,
        system=task.system,
        limit=task.limit,
    )


def baseline_prompts(task: TaskSpec, rows: list[EvalRow], kind: str) -> list[list[dict[str, str]]]:
    """Prompts of a prompting baseline for the base model.

    ``zero-shot``: the instruction as system message, then the row's conversation.
    ``few-shot``: the same, with ``k`` training examples as earlier user/assistant turns.

    Raises:
        UsageError: ``few-shot`` asked for but the task names no training examples.
    """
    if kind not in BASELINES:
        raise UsageError(f"--baselines: unknown baseline {kind!r}; use {', '.join(BASELINES)}")
    spec = task.baselines or BaselineSpec()
    instruction = spec.instruction or task.system
    shots: list[dict[str, str]] = []
    if kind == "few-shot":
        if spec.few_shot is None:
            raise UsageError(
                f"{task.path}: baselines.few_shot: missing; name a train file and k to run the "
                "few-shot baseline"
            )
        pool = read_rows(spec.few_shot.train, fmt=task.format, target_field=task.target_field)
        picked = random.Random(spec.few_shot.seed).sample(pool, min(spec.few_shot.k, len(pool)))
        for ex in picked:
            shots.extend(m for m in ex.prompt if m["role"] != "system")
            shots.append({"role": "assistant", "content": ex.target})
    out = []
    for row in rows:
        own_system = [m for m in row.prompt if m["role"] == "system"]
        system = instruction if instruction is not None else (
            own_system[0]["content"] if own_system else None
        )
        convo = [m for m in row.prompt if m["role"] != "system"]
        head = [{"role": "system", "content": system}] if system else []
        out.append([*head, *shots, *convo])
    return out

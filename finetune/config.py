"""The training config: a typed, validated model loaded from YAML plus ``key=value`` overrides.

``finetune train CONFIG.yaml optim.lr=1e-3 name=fair`` reads the YAML, applies the overrides
(dotted keys reach into sections), and validates everything at once. Unknown keys and wrong
types become one line naming the file (and line) and the key. Paths inside the YAML are
relative to the YAML's folder; paths given as overrides are relative to the current folder.
Each field's docstring is its help text (``finetune train --help`` lists them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finetune.errors import UsageError, where
from finetune.rundir import check_run_name
from finetune.yamlspec import read_mapping, resolve_path, validate

_PATH_FIELDS = ("train_data", "heldout_data", "base", "chat_template")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=False)


class LoraSection(_Section):
    """LoRA adapter settings (ignored by ``method: full``)."""

    r: int = Field(16, gt=0)
    """LoRA rank."""
    alpha: float = Field(32.0, gt=0)
    """LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA input."""
    target_modules: str | list[str] = "all-linear"
    """Modules to adapt: ``all-linear`` (every linear layer but the output head) or a list."""
    top_layers: int | None = Field(None, gt=0)
    """Adapt only the last N decoder layers (PEFT's ``layers_to_transform``). The frozen
    layers below them need no backward pass, so a step costs less: SmolLM2-135M's top 10 of
    30 layers took 0.62x the step time of all 30 on a quiet 2-core machine (0.48x in
    bench/RESULTS.md, measured under load). Modules outside the decoder layers (e.g.
    ``embed_tokens``) are then not adapted."""
    modules_to_save: list[str] | None = None
    """Modules trained fully and saved with the adapter (e.g. ``[norm]``: every norm weight)."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilised LoRA scaling (alpha / sqrt(r))."""


class OptimSection(_Section):
    """Optimiser and schedule."""

    lr: float = Field(2e-4, gt=0)
    """Peak learning rate (AdamW)."""
    epochs: float = Field(3.0, gt=0)
    """Training epochs (may be fractional)."""
    max_steps: int = -1
    """Stop after this many optimiser steps; -1 trains for ``epochs``."""
    batch_size: int = Field(8, gt=0)
    """Rows per device per step."""
    grad_accum: int = Field(1, gt=0)
    """Gradient accumulation steps."""
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    """Share of the steps spent warming the learning rate up."""
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate schedule."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping norm."""


class EvalSection(_Section):
    """Held-out evaluation, early stopping and checkpoints."""

    every_steps: int = Field(50, gt=0)
    """Held-out loss (and a checkpoint) every N optimiser steps."""
    batch_size: int | None = Field(None, gt=0)
    """Rows per eval batch; default ``optim.batch_size``."""
    patience: int = Field(0, ge=0)
    """Stop after this many evals without improvement; 0 never stops early."""
    threshold: float = Field(0.0, ge=0.0)
    """Smallest drop in held-out loss that counts as an improvement."""


class DataChecksSection(_Section):
    """Options of the data validation that runs before training."""

    group_field: str | None = None
    """Metadata field holding the demographic group (default: inferred from the text)."""
    outcome_pattern: str | None = None
    """Regex over the answer whose rate per group the skew check compares."""
    axes_file: str | None = None
    """A user's axes.yaml (relative to the config): its axes join the audit's."""


class ParamSpec(_Section):
    """One dimension of a sweep's search space."""

    type: Literal["float", "int", "categorical"]
    """``float``, ``int`` or ``categorical``."""
    low: float | None = None
    """Lower bound (float, int)."""
    high: float | None = None
    """Upper bound (float, int)."""
    log: bool = False
    """Sample on a log scale (float, int)."""
    choices: list[Any] | None = None
    """Values to choose from (categorical)."""

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty choices list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"{self.type} needs low <= high")
        return self


class SweepSection(_Section):
    """The search space of ``finetune sweep``: dotted config keys to parameter specs."""

    params: dict[str, ParamSpec]
    """Dotted config key (``optim.lr``, ``lora.r``) -> ``{type, low, high, log, choices}``."""
    direction: Literal["minimize"] = "minimize"
    """The objective is the best held-out loss, minimised."""
    pruner: Literal["median", "none"] = "median"
    """Stop unpromising trials early on held-out loss (Optuna's median pruner)."""

    @field_validator("params")
    @classmethod
    def _known_keys(cls, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for key in params:
            if key.startswith("sweep") or _field_at(TrainConfig, key.split(".")) is None:
                raise ValueError(f"unknown config key {key!r} in search space")
        return params


class TrainConfig(_Section):
    """Everything ``finetune train`` needs; validated on creation."""

    name: str = "run"
    """Run name (the run is written to ``<runs>/<name>/``): letters, digits, ``_``, ``-``."""
    base: str = "tiny"
    """Base model: ``tiny``, ``smollm2``, a ``.gguf`` file, a local model folder, or a hub id."""
    chat_template: str | None = None
    """Prompt rendering: the base's own template (``default`` when it has none), ``default``,
    a ``.jinja`` file, or a Jinja template."""
    train_data: str
    """Training data: JSONL, CSV, Parquet or a hub dataset id."""
    heldout_data: str | None = None
    """Held-out data for eval loss; if absent, ``heldout_fraction`` of the train rows."""
    heldout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of train rows held out when ``heldout_data`` is absent; 0 disables eval. A row
    and the copies ``finetune rebalance`` made of it land on the same side."""
    format: Literal["auto", "chat", "prompt_completion", "instruction"] = "auto"
    """Row format; ``auto`` detects it per row."""
    max_seq_len: int = Field(1024, gt=0)
    """Longest tokenised row; longer rows are truncated (validation warns)."""
    method: Literal["lora", "qlora", "full"] = "lora"
    """``lora``, ``qlora`` (4-bit base, CUDA only) or ``full`` (every weight; baseline)."""
    lora: LoraSection = Field(default_factory=LoraSection)
    """LoRA settings."""
    optim: OptimSection = Field(default_factory=OptimSection)
    """Optimiser settings."""
    eval: EvalSection = Field(default_factory=EvalSection)
    """Evaluation and early stopping."""
    data_checks: DataChecksSection = Field(default_factory=DataChecksSection)
    """Data validation options."""
    seed: int = 0
    """Seed for initialisation, shuffling and the held-out split."""
    threads: int | None = Field(None, gt=0)
    """CPU threads while training (default: torch's, one per core). The summation order, and
    so the exact result, depends on it: pin it for runs that must repeat across machines."""
    batching: Literal["padded", "length_grouped", "padding_free"] = "length_grouped"
    """Batches: ``padded`` (random order), ``length_grouped`` (similar lengths together, little
    padding) or ``padding_free`` (rows concatenated with position ids, no padding)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower)."""
    dtype: str | None = None
    """Weights dtype (``float32``, ``bfloat16``); default bf16 on CUDA, fp32 on CPU."""
    device: str | None = None
    """``cpu`` or ``cuda``; default CUDA when available (ignored under ``accelerate launch``)."""
    logging_steps: int = Field(10, gt=0)
    """Write a metrics.jsonl line every N optimiser steps."""
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    """Trackers to log to (``tensorboard``, ``wandb``); they must be installed."""
    trust_remote_code: bool = False
    """Run code shipped with a hub model."""
    sweep: SweepSection | None = None
    """Search space for ``finetune sweep`` (ignored by ``finetune train``)."""

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return check_run_name(value)

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value: Any) -> Any:
        if value in (None, "none", ""):
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("lora", mode="after")
    @classmethod
    def _lora_modules(cls, value: LoraSection) -> LoraSection:
        if isinstance(value.target_modules, list) and not value.target_modules:
            raise ValueError("target_modules: empty list")
        return value

    def to_yaml(self) -> str:
        """The config as YAML, every default spelled out (the run's ``config.yaml``)."""
        data = self.model_dump(mode="json")
        if data.get("sweep") is None:
            data.pop("sweep", None)
        return yaml.safe_dump(data, sort_keys=False)


def _field_at(model: type[BaseModel], keys: list[str]) -> Any:
    """The pydantic FieldInfo at a dotted path, or None when a key is unknown."""
    info = None
    for i, key in enumerate(keys):
        if model is None or key not in model.model_fields:
            return None
        info = model.model_fields[key]
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if i < len(keys) - 1 and model is None:
            return None
    return info


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``optim.lr=1e-3`` into ``(["optim", "lr"], 0.001)``; the value is read as YAML.

    Raises:
        UsageError: no ``=`` or an empty key.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{item}: expected key=value (e.g. optim.lr=1e-3)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        value = _maybe_number(value)
    return key.strip().split("."), value


def _maybe_number(text: str) -> Any:
    # YAML 1.1 reads "1e-3" as a string; users mean a number.
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _set(data: dict[str, Any], keys: list[str], value: Any, origin: str) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise UsageError(where(origin, None, ".".join(keys), f"{key} is not a section"))
        node = child
    node[keys[-1]] = value


def _resolve(value: str, base_dir: Path, fallback: Path | None = None) -> str:
    from finetune.models import NAMED_BASES

    # Named bases, the named template and inline Jinja templates are not paths.
    if value in NAMED_BASES or value == "default" or "{{" in value or "{%" in value:
        return value
    return resolve_path(value, base_dir, fallback)


def config_from_dict(data: dict[str, Any], origin: str = "<config>", text: str = "",
                     overridden: set[str] | None = None) -> TrainConfig:
    """Validate a dict into a :class:`TrainConfig`; errors become one :class:`UsageError` line."""
    return validate(TrainConfig, data, origin, text, overridden or ())


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides, validate.

    Args:
        path: the YAML file; relative paths in it are resolved against its folder.
        overrides: ``key=value`` strings; dotted keys reach into sections (``optim.lr=1e-3``).

    Returns:
        The validated config with absolute data paths.

    Raises:
        InputError: the file is missing, unreadable or not YAML.
        UsageError: an unknown key or a wrong type, as one line naming file, line and key.
    """
    path = Path(path)
    data, text = read_mapping(path)
    yaml_dir = path.resolve().parent
    for key in _PATH_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = _resolve(data[key], yaml_dir)
    overridden: set[str] = set()
    for item in overrides or []:
        keys, value = parse_override(item)
        if len(keys) == 1 and keys[0] in _PATH_FIELDS and isinstance(value, str):
            value = _resolve(value, Path.cwd(), fallback=yaml_dir)
        _set(data, keys, value, "command line")
        overridden.add(".".join(keys))
    config = config_from_dict(data, str(path), text, overridden)
    if config.data_checks.axes_file:
        from finetune.data.axes import use_axes_file

        config.data_checks.axes_file = resolve_path(config.data_checks.axes_file, yaml_dir)
        use_axes_file(config.data_checks.axes_file)  # train's data report audits its axes
    return config


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with dotted-key overrides applied and validated again."""
    data = config.model_dump(mode="json")
    for key, value in overrides.items():
        _set(data, key.split("."), value, "override")
    return config_from_dict(data, "override")


def describe_fields(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    """``key (default): help`` lines for every config field, sections flattened with dots."""
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(describe_fields(ann, f"{prefix}{name}."))
            continue
        if name == "sweep" or prefix.startswith("sweep"):
            continue
        default = "required" if info.is_required() else info.get_default(call_default_factory=True)
        help_text = " ".join((info.description or "").split())
        out.append(f"  {prefix}{name} ({default}): {help_text}")
    return out

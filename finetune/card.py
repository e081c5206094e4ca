"""The model card (a run's ``README.md``): Hugging Face front matter and the cost report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune.rundir import ADAPTER, DATA_REPORT


def model_card(config: Any, run: dict[str, Any]) -> str:
    """The run's README.md.

    Hugging Face model-card front matter, then what was trained on what, the cost report and
    the held-out loss.
    """
    import yaml

    method = run.get("method", "lora")
    tags = ["tuneproof", method, "text-generation"]
    if method != "full":
        tags.insert(1, "peft")
    front: dict[str, Any] = {
        "base_model": run.get("base"),
        "library_name": "peft" if method != "full" else "transformers",
        "pipeline_tag": "text-generation",
        "tags": tags,
        "metrics": ["loss"],
        "model-index": [{
            "name": run.get("name"),
            "results": [{
                "task": {"type": "text-generation"},
                "dataset": {"type": "json", "name": Path(str(run.get("heldout_data")
                                                             or run.get("train_data"))).name},
                "metrics": [{"type": "loss", "name": "held-out loss",
                             "value": run.get("best_eval_loss")}],
            }],
        }],
    }
    lora = getattr(config, "lora", None)
    rows = [
        ("method", method),
        ("trainable / total params", f"{run.get('trainable_params'):,} / "
                                     f"{run.get('total_params'):,}"),
        ("train rows / held-out rows", f"{run.get('n_train_rows')} / {run.get('n_heldout_rows')}"),
        ("best held-out loss", run.get("best_eval_loss")),
        ("best step / steps", f"{run.get('best_step')} / {run.get('global_step')}"),
        ("stopped early", run.get("stopped_early")),
        ("tokens/s (non-padding)", run.get("tokens_per_s")),
        ("peak memory", f"{(run.get('peak_memory_bytes') or 0) / 2**20:.0f} MiB "
                        f"({run.get('peak_memory_kind')})"),
        ("wall time", f"{run.get('wall_time_s')} s"),
        ("data fingerprint", f"`{str(run.get('data_fingerprint'))[:16]}`"),
    ]
    if lora is not None and method != "full":
        rows.insert(1, ("LoRA", f"r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, "
                                f"target_modules={lora.target_modules}, dora={lora.use_dora}, "
                                f"rslora={lora.use_rslora}"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    artefact = run.get("artifact", ADAPTER)
    if method == "full":
        usage = (f'model = AutoModelForCausalLM.from_pretrained("{artefact}")  # a full model')
    else:
        usage = (f'model = PeftModel.from_pretrained(base, "{artefact}")  '
                 f"# base = {run.get('base')} loaded with finetune.models.load_base")
    data_note = ""
    summary = run.get("data_report")
    if summary:
        data_note = ("\n## Data checks\n\n```json\n" + json.dumps(summary, indent=2)
                     + f"\n```\n\nFull report: `{DATA_REPORT}`.\n")
    return (
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n"
        f"# {run.get('name')}\n\n"
        f"A {method} fine-tune of `{run.get('base')}` trained with tuneproof on "
        f"`{Path(str(run.get('train_data'))).name}`.\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        f"## Use\n\n```python\n{usage}\n```\n{data_note}\n"
        "Loss is on assistant tokens only. Evaluate accuracy and fairness with "
        "`evalsuite run TASK.yaml` before relying on it.\n"
    )

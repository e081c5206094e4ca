"""The first screen: two sentences for someone who opens the app cold.

What each model is, what the evaluation found, and where to click first, generated from the
runs' own model cards (``README.md``, written by ``finetune.card``) and the evaluation's
``results.json`` (its verdicts, ``evalsuite.verdict``). Nothing is written per demo: a user's
own runs and evaluation get their own sentences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.verdict import NO_SHIP, SHIPS, verdicts

# The first line of finetune.card.model_card's body: "A lora fine-tune of `tiny` trained with
# tuneproof on `train.jsonl`." (tests/test_app_intro.py writes cards with it).
_CARD_LINE = re.compile(r"A (\w+) fine-tune of `([^`]*)` trained with tuneproof on `([^`]*)`")
_BASES = {"tiny": "a random-weights test model, so its answers are noise",
          "smollm2": "SmolLM2-135M-Instruct, a small pretrained chat model"}
_METHODS = {"lora": "LoRA adapter", "qlora": "QLoRA adapter", "full": "full fine-tune"}


@dataclass(frozen=True)
class Card:
    """What a run's model card says about it.

    Attributes:
        name: The run (and adapter) name.
        method: ``lora``, ``qlora`` or ``full``.
        base: The base model it was trained on.
        data: The training data's file name.
    """

    name: str
    method: str
    base: str
    data: str


def read_card(name: str, run_dir: Path, run: Mapping[str, Any] | None = None) -> Card:
    """The card of the run in ``run_dir``; its ``run.json`` fills what the card lacks."""
    run = run or {}
    try:
        text = (run_dir / "README.md").read_text(encoding="utf-8")
    except OSError:
        text = ""
    found = _CARD_LINE.search(text)
    if found:
        return Card(name, found[1], found[2], Path(found[3]).name)
    data = run.get("train_data")
    return Card(name, str(run.get("method", "lora")), str(run.get("base", "?")),
                Path(str(data)).name if data else "")


def _names(items: Sequence[str]) -> str:
    quoted = [f"`{x}`" for x in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _models_sentence(base: str, cards: Sequence[Card]) -> str:
    what = _BASES.get(base)
    base_part = f"the base `{base}`" + (f" ({what})" if what else "")
    if not cards:
        return (f"Only {base_part} answers here: the runs folder holds no fine-tuned adapter "
                "yet.")
    kinds = sorted({_METHODS.get(c.method, f"{c.method} fine-tune") for c in cards})
    plural = len(cards) > 1
    trained = ", ".join(f"`{c.name}` on {c.data}" for c in cards if c.data)
    return (f"{_names([c.name for c in cards])} {'are' if plural else 'is a'} "
            f"{' / '.join(kinds)}{'s' if plural else ''} of {base_part}"
            + (f", trained with tuneproof ({trained})," if trained else "")
            + f" and answer{'' if plural else 's'} beside it.")


def _found_sentence(results: Mapping[str, Any] | None, served: Sequence[str],
                    building: bool) -> str:
    if not results and building:
        return ("The demo is being built below (its data, a biased and a fair adapter, their "
                "evaluation), each model joining this page when trained: meanwhile send one "
                "message on the **Compare** tab.")
    if not results:
        return ("No evaluation is loaded: send one message on the **Compare** tab to see every "
                "model answer it; `evalsuite run TASK.yaml --out DIR`, then "
                "`python app.py --results DIR`, adds the verdict under **Reports**.")
    judged = [v for v in verdicts(dict(results)) if v.model in served]
    n = (results.get("task") or {}).get("n_rows")
    on = f"on {n} held-out prompts " if n else ""
    ships = [v.model for v in judged if v.outcome == SHIPS]
    blocked = [v for v in judged if v.outcome == NO_SHIP]
    said = []
    if ships:
        said.append(f"ships {_names(ships)}")
    if blocked:
        said.append(f"does not ship {_names([v.model for v in blocked])} "
                    f"({blocked[0].model} {blocked[0].evidence[0]})")
    if not said:
        said.append("gives no ship / no-ship verdict (no gates decided one)")
    flipped = any(g.get("key", "").startswith("counterfactual") and not g.get("passed")
                  for v in blocked for g in results["models"][v.model].get("gates") or [])
    click = ("click **Show me the bias** on the Compare tab to see it happen on one pair of "
             "prompts" if flipped else "send one message on the **Compare** tab to see every "
             "model answer it")
    return (f"The evaluation {on}{' and '.join(said)}: {click}, then open **Reports** for the "
            "numbers.")


def intro(base: str, cards: Sequence[Card], results: Mapping[str, Any] | None,
          building: bool = False) -> list[str]:
    """The two sentences: what each model is; what the evaluation found and where to click.

    Args:
        base: The base model's reference (``tiny``, ``smollm2``, a folder...).
        cards: The served adapters' model cards.
        results: The evaluation of these models (``results.json``), if one is loaded.
        building: Whether the demo is still being built in the background.
    """
    served = [c.name for c in cards]
    return [_models_sentence(base, cards), _found_sentence(results, served, building)]


def pick_results(found: Mapping[str, Path], served: Sequence[str]) -> dict[str, Any] | None:
    """The first evaluation (``reports.find_results`` order) that judged a served adapter."""
    for folder in found.values():
        try:
            results = json.loads((Path(folder) / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if set(results.get("models") or {}) & set(served):
            return results
    return None

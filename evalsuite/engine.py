"""THE generation engine: one base model in memory, adapters by name, one mixed batch.

Every prompt x model pair of a chunk goes through a single ``generate`` call with PEFT's
mixed-adapter batches (``adapter_names=[...]``, ``"__base__"`` for the base), so scoring
the base and two adapters costs about one pass instead of three. Prompts are rendered with
the tokenizer's chat template, sorted by length (longest first, so a memory error shows on
the first chunk) and left-padded. The same engine serves the evaluation, the fairness probes
(log-likelihoods) and the app (token streaming).

Mixed batches do not work with DoRA or merged adapters (PEFT docs); such adapters are
refused when loaded. When every loaded adapter is plain LoRA, the LoRA layers run the batched
fast path of ``evalsuite.lora_batched`` (every adapter stacked, two matmuls per layer instead
of PEFT's loop over adapters); ``batched_lora=False`` keeps PEFT's path, the reference.

:class:`Engine` holds the model and generation; it inherits loading adapters from
:mod:`evalsuite.engine_adapters` and scoring continuations (log-likelihoods) from
:mod:`evalsuite.engine_likelihood`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from evalsuite.cpu_linear import apply_layout, choose_layout
from evalsuite.engine_adapters import AdapterLoading, resolve_adapter_dir
from evalsuite.engine_likelihood import Likelihoods
from evalsuite.generation import Generation, GenerationConfig
from evalsuite.lora_batched import BASE
from evalsuite.prompt_codec import PromptCodec
from finetune.errors import UsageError
from finetune.models import load_base

__all__ = ["BASE", "Engine", "Generation", "GenerationConfig", "resolve_adapter_dir"]


class _BatchStreamer:
    """Receives every decoding step's tokens (one per row) from ``generate`` into a queue.

    ``transformers``' text streamers accept one row only; this one keeps the whole batch.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call hands over the prompt ids
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(None)


class Engine(PromptCodec, AdapterLoading, Likelihoods):
    """A base model plus named LoRA adapters, generating for all of them in one batch.

    Args:
        base: ``tiny``, a local model folder or a hub id (see ``finetune.models``).
        adapters: name -> adapter folder or run directory.
        device: ``cpu``, ``cuda``...; default CUDA when available.
        dtype: torch dtype name; default bf16 on CUDA, fp32 on CPU.
        trust_remote_code: run the base repository's own code.
        max_prompt_tokens: longest prompt accepted, in tokens.
        max_new_tokens_cap: largest ``max_new_tokens`` accepted.
        batch_size: prompts per chunk; each chunk holds ``batch_size x len(models)`` rows.
        batched_lora: apply mixed-adapter batches with the stacked fast path when every
            adapter qualifies (plain LoRA); ``False``: PEFT's own loop over adapters.
        chat_template: prompt rendering, as in training (``finetune.models.load_tokenizer``).
        weight_layout: how the base's Linear weights are laid out for the CPU's kernels
            (:mod:`evalsuite.cpu_linear`): ``row`` as loaded, ``column``, ``packed``
            (oneDNN's, a second copy); ``auto`` (default) decides by size, dtype, device and
            free memory (:func:`evalsuite.cpu_linear.choose_layout`). ``weight_layout`` then
            names the choice.
    """

    def __init__(
        self,
        base: str = "tiny",
        adapters: Mapping[str, str | Path] | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        max_prompt_tokens: int = 1024,
        max_new_tokens_cap: int = 256,
        batch_size: int = 32,
        batched_lora: bool = True,
        chat_template: str | None = None,
        weight_layout: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size: must be >= 1, got {batch_size}")
        self.base_ref = base
        self.model, self.tokenizer = load_base(
            base, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
            chat_template=chat_template,
        )
        self.tokenizer.padding_side = "left"
        self.device = next(self.model.parameters()).device
        self.weight_layout = choose_layout(self.model, weight_layout)
        apply_layout(self.model, self.weight_layout)
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens_cap = max_new_tokens_cap
        self.batch_size = batch_size
        self.batched_lora = batched_lora
        self._batched: Any = None  # BatchedLoRA, built on first use after an adapter change
        self.adapter_dirs: dict[str, Path] = {}
        self.adapter_warnings: dict[str, list[str]] = {}  # name -> evalsuite.adapter_checks
        self._lock = threading.Lock()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self._eos: set[int] = set(eos if isinstance(eos, list) else [eos]) - {None}
        for name, path in (adapters or {}).items():
            self.add_adapter(name, path)

    # ----------------------------------------------------------------- adapters
    def _adapter_names(self) -> list[str]:
        return list(self.adapter_dirs)

    def _context_limit(self) -> tuple[int | None, str]:
        return getattr(self.model.config, "max_position_embeddings", None), "model's"

    @property
    def is_peft(self) -> bool:
        """Whether any adapter is loaded (the model is then a ``PeftModel``)."""
        return bool(self.adapter_dirs)

    # add_adapter: evalsuite.engine_adapters.AdapterLoading
    # model_names, render, encode_prompt, the checks: evalsuite.prompt_codec.PromptCodec

    def _generate_kwargs(self, config: GenerationConfig) -> dict[str, Any]:
        from transformers import GenerationConfig as HFGenerationConfig

        sample = config.temperature > 0
        gen = HFGenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=sample,
            temperature=config.temperature if sample else None,
            top_p=config.top_p if sample else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos) or None,
        )
        return {"generation_config": gen}

    def _batch(self, id_lists: list[list[int]], side: str = "left") -> dict[str, Any]:
        import torch

        width = max(len(ids) for ids in id_lists)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(id_lists), width), pad, dtype=torch.long)
        mask = torch.zeros((len(id_lists), width), dtype=torch.long)
        for r, ids in enumerate(id_lists):
            if side == "left":
                input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                mask[r, width - len(ids):] = 1
            else:
                input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                mask[r, : len(ids)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    def _mixed(self, row_models: list[str]) -> tuple[Any, dict[str, Any]]:
        """(context, generate kwargs) that give row ``i`` the model ``row_models[i]``."""
        # A plain model (no adapters) only ever serves BASE; _check_models made sure of that.
        if not self.is_peft:
            return contextlib.nullcontext(), {}
        if self.batched_lora:
            if self._batched is None:
                from evalsuite.lora_batched import BatchedLoRA

                self._batched = BatchedLoRA.build(self.model) or False
            if self._batched:
                return self._batched.activate(row_models), {}
        return contextlib.nullcontext(), {"adapter_names": list(row_models)}

    def _keeps_logits(self) -> bool:
        """Whether the scorer may ask for the scored positions' logits alone.

        The model must take ``logits_to_keep``, and no adapter may wrap the LM head: a mixed
        batch maps its LoRA rows by batch row, which a flattened selection no longer has.
        """
        from finetune.models import accepts_logits_to_keep

        if not accepts_logits_to_keep(self.model):
            return False
        head = self.model.get_output_embeddings()
        return not hasattr(head, "lora_A")

    @property
    def dtype_name(self) -> str:
        """The base's weight dtype: ``float32``, ``bfloat16``..."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @property
    def uses_batched_lora(self) -> bool:
        """Whether mixed batches run the stacked fast path (else PEFT's loop)."""
        with self._lock:  # _mixed builds self._batched on first use
            self._mixed([BASE])
        return bool(self.batched_lora and self.is_peft and self._batched)

    # -------------------------------------------------------------- generation
    def generate(
        self,
        prompts: Sequence[list[dict[str, str]]],
        models: Sequence[str],
        config: GenerationConfig | None = None,
        progress: bool = False,
    ) -> list[list[Generation]]:
        """Answer every prompt with every model, all models in one mixed batch per chunk.

        Args:
            prompts: chat conversations without the final assistant turn.
            models: model names (``BASE`` and/or adapter names).
            config: decoding settings; greedy, 32 new tokens by default.
            progress: show a tqdm bar counting generations.

        Returns:
            ``result[i][j]``: prompt ``i`` answered by ``models[j]``.

        Raises:
            UsageError: an unknown model, an over-long prompt or ``max_new_tokens`` above the cap.
        """
        import torch
        from tqdm.auto import tqdm

        models, encoded, config = self._prepare(prompts, models, config)
        if not encoded:
            return []
        kwargs = self._generate_kwargs(config)
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        results: list[list[Generation | None]] = [[None] * len(models) for _ in encoded]
        bar = tqdm(total=len(encoded) * len(models), unit="gen", disable=not progress,
                   desc="generate")
        with self._lock, bar:
            for c, start in enumerate(range(0, len(order), self.batch_size)):
                chunk = order[start: start + self.batch_size]
                rows = [(i, j) for i in chunk for j in range(len(models))]
                batch = self._batch([encoded[i] for i, _ in rows])
                seed_ctx = (
                    torch.random.fork_rng(devices=self._rng_devices())
                    if config.seed is not None and config.temperature > 0
                    else contextlib.nullcontext()
                )
                mixed, names = self._mixed([models[j] for _, j in rows])
                t0 = time.perf_counter()
                with seed_ctx, torch.inference_mode(), mixed:
                    if config.seed is not None and config.temperature > 0:
                        torch.manual_seed(config.seed + c)
                    out = self.model.generate(**batch, **kwargs, **names)
                seconds = time.perf_counter() - t0
                new = out[:, batch["input_ids"].shape[1]:].tolist()
                for (i, j), tokens in zip(rows, new, strict=True):
                    kept, n = self._cut(tokens)
                    text = self.tokenizer.decode(kept, skip_special_tokens=True)
                    results[i][j] = Generation(models[j], text, n, seconds, tuple(kept))
                bar.update(len(rows))
        return results  # type: ignore[return-value]

    def _rng_devices(self) -> list[Any]:
        return [self.device] if self.device.type == "cuda" else []

    def stream(
        self,
        messages: list[dict[str, str]] | Sequence[list[dict[str, str]]],
        models: Sequence[str],
        config: GenerationConfig | None = None,
    ) -> Iterator[list[str]]:
        """Stream one conversation's answer from several models decoded together.

        ``messages`` may also be one conversation per model (the app's columns each keep
        their own multi-turn history); they are still decoded in one mixed batch.

        Yields:
            After every decoding step, the cumulative text of each model, in ``models`` order.
            Closing the iterator early stops the decoding.

        Raises:
            UsageError: as :meth:`generate`.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        models = self._check_models(models)
        if messages and isinstance(messages[0], list):
            if len(messages) != len(models):
                raise UsageError(
                    f"messages: {len(messages)} conversations for {len(models)} models"
                )
            id_lists = [self.encode_prompt(m, i) for i, m in enumerate(messages)]
        else:
            id_lists = [self.encode_prompt(messages)] * len(models)  # type: ignore[arg-type]
        config = self._check_config(config, max(len(ids) for ids in id_lists))
        batch = self._batch(id_lists)
        streamer = _BatchStreamer()
        stop = threading.Event()
        failure: list[BaseException] = []

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        kwargs = self._generate_kwargs(config)

        def work() -> None:
            try:
                with self._lock, torch.inference_mode():
                    mixed, names = self._mixed(models)
                    if config.seed is not None and config.temperature > 0:
                        torch.manual_seed(config.seed)
                    with mixed:
                        self.model.generate(
                            **batch, **kwargs, **names, streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Stop()]),
                    )
            except BaseException as err:  # handed to the consuming thread
                failure.append(err)
                streamer.queue.put(None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        tokens: list[list[int]] = [[] for _ in models]
        done = [False] * len(models)
        try:
            while True:
                step = streamer.queue.get()
                if step is None:
                    break
                for r, t in enumerate(step):
                    if done[r]:
                        continue
                    if t in self._eos:
                        done[r] = True
                    else:
                        tokens[r].append(t)
                yield [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
        finally:
            stop.set()
            thread.join()
        if failure:
            raise failure[0]


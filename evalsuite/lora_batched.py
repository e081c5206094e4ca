"""Batched LoRA for mixed-adapter batches: every row its own adapter, no per-adapter loop.

PEFT's mixed batch (``adapter_names=[...]``) loops over the adapters in every LoRA layer at
every step: an index-select of the adapter's rows, two small matmuls and an index-add back.
Here each LoRA layer keeps every loaded adapter's A and B concatenated along the rank
(``A_cat``: sum of ranks x in, ``B_cat``: out x sum of ranks) and a batch is applied with
two plain matmuls: ``x @ A_cat.T`` gives every adapter's rank-r projection of every row, a
0/1 mask keeps only the row's own adapter block (the gather of Punica's BGMV, done as a
mask because a few adapters' projections cost less than copying per-row weights), and
``@ B_cat.T`` times the row's scaling gives the LoRA term. A ``__base__`` row has an all-zero
mask, so its term is exactly zero. The arithmetic per row is PEFT's (``B(A x) * scaling``
added to the base output), so greedy tokens match PEFT's mixed batch; the tests check it.

Stacking pays off for decoding (a token per row), where PEFT's loop costs more in calls than
in arithmetic. A long forward pass (a batch's prefill: many rows x many tokens) is the other
way round: the stacked product multiplies every row by every adapter and scales and adds a
full-size term, so above ``GROUPED_MIN_TOKENS`` tokens each adapter is applied to its own
rows only, exactly as PEFT's loop does.

Only plain LoRA on ``nn.Linear`` and ``nn.Embedding`` qualifies (no DoRA or other variants,
no bias on B, no ``fan_in_fan_out``, no merged weights, no ``modules_to_save`` or trainable
tokens); anything else makes :func:`BatchedLoRA.build` return ``None`` and the engine falls
back to PEFT's own path, which stays the reference.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

BASE = "__base__"
"""The model name of the base itself (no adapter): never a run name, which starts with a
letter or digit. ``evalsuite.engine`` serves it under this name; its rows get no LoRA term."""

# Tokens in one call (rows x sequence) from which the LoRA terms are computed per adapter on
# its own rows. Measured on SmolLM2-135M, a 48-row prefill of 50 tokens: LoRA terms 2.1 s of
# CPU stacked, 0.9 s grouped; a decoding step of the same 48 rows is cheaper stacked.
GROUPED_MIN_TOKENS = 256


@dataclass
class _Layer:
    """One LoRA layer's stacked adapters; ``names``/``ranks``/``scales`` follow ``A_cat``."""

    module: Any
    kind: str  # "linear" or "embedding"
    names: tuple[str, ...]
    ranks: tuple[int, ...]
    scales: tuple[float, ...]
    a_cat: Any  # linear: (sum r, in); embedding: (num_embeddings, sum r)
    b_cat_t: Any  # (sum r, out), contiguous for x @ B_cat.T
    embed_scale: Any = None


@dataclass
class BatchedLoRA:
    """Stacked LoRA weights of a PEFT model, applied per row through :meth:`activate`."""

    layers: list[_Layer]
    _masks: dict[tuple, tuple[Any, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, model: Any) -> BatchedLoRA | None:
        """Stack every LoRA layer of ``model`` (a ``PeftModel``).

        Returns:
            ``None`` when a layer is not plain LoRA on a Linear or Embedding layer (then use
            PEFT's mixed batch).
        """
        import torch
        from peft.tuners.lora import layer as lora_layer
        from peft.tuners.tuners_utils import BaseTunerLayer

        for cfg in getattr(model, "peft_config", {}).values():
            if getattr(cfg, "peft_type", None) is None or str(cfg.peft_type) not in (
                "LORA", "PeftType.LORA"
            ):
                return None
            if (getattr(cfg, "use_dora", False) or getattr(cfg, "modules_to_save", None)
                    or getattr(cfg, "trainable_token_indices", None)
                    or getattr(cfg, "lora_bias", False) or getattr(cfg, "fan_in_fan_out", False)):
                return None
        layers: list[_Layer] = []
        with torch.no_grad():
            for module in model.modules():
                if not isinstance(module, BaseTunerLayer):
                    continue
                kind = {lora_layer.Linear: "linear", lora_layer.Embedding: "embedding"}.get(
                    type(module))
                if kind is None or module.merged or module.disable_adapters:
                    return None
                if getattr(module, "lora_variant", None):
                    return None
                if kind == "linear":
                    names = tuple(module.lora_A.keys())
                    if any(module.lora_B[n].bias is not None for n in names):
                        return None
                    a = [module.lora_A[n].weight for n in names]
                    b = [module.lora_B[n].weight for n in names]
                    embed_scale = None
                else:
                    names = tuple(module.lora_embedding_A.keys())
                    a = [module.lora_embedding_A[n].T for n in names]  # (num_emb, r)
                    b = [module.lora_embedding_B[n] for n in names]  # (out, r)
                    embed_scale = module._get_embed_scale()
                if not names:
                    continue
                ranks = tuple(int(w.shape[1] if kind == "embedding" else w.shape[0]) for w in a)
                a_cat = torch.cat(a, dim=1 if kind == "embedding" else 0).contiguous()
                b_cat_t = torch.cat(b, dim=1).T.contiguous()
                scales = tuple(float(module.scaling[n]) for n in names)
                layers.append(_Layer(module, kind, names, ranks, scales, a_cat, b_cat_t,
                                     embed_scale))
        return cls(layers) if layers else None

    def _groups(self, layer: _Layer, rows: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
        """(adapter name, indices of its rows) for each of the layer's adapters in ``rows``."""
        import torch

        key = ("groups", layer.names, rows, layer.a_cat.device)
        hit = self._masks.get(key)
        if hit is None:
            hit = tuple(
                (n, torch.tensor([i for i, r in enumerate(rows) if r == n],
                                 device=layer.a_cat.device))
                for n in layer.names if n in rows
            )
            self._masks[key] = hit
        return hit

    def _mask(self, layer: _Layer, rows: tuple[str, ...]) -> tuple[Any, Any]:
        """(0/1 mask of shape (rows, 1, sum r), per-row scaling of shape (rows, 1, 1))."""
        import torch

        key = (layer.names, layer.ranks, layer.scales, rows, layer.a_cat.dtype,
               layer.a_cat.device)
        hit = self._masks.get(key)
        if hit is not None:
            return hit
        offsets = [0]
        for r in layer.ranks:
            offsets.append(offsets[-1] + r)
        mask = torch.zeros(len(rows), 1, offsets[-1], dtype=layer.a_cat.dtype)
        scale = torch.zeros(len(rows), 1, 1, dtype=layer.a_cat.dtype)
        for i, name in enumerate(rows):
            if name in layer.names:
                k = layer.names.index(name)
                mask[i, 0, offsets[k]: offsets[k + 1]] = 1
                scale[i, 0, 0] = layer.scales[k]
        hit = (mask.to(layer.a_cat.device), scale.to(layer.a_cat.device))
        if len(self._masks) > 256:  # one entry per (layer shape, row list); keep it bounded
            self._masks.clear()
        self._masks[key] = hit
        return hit

    @contextlib.contextmanager
    def activate(self, adapter_names: Sequence[str]) -> Iterator[None]:
        """Within the block, LoRA layers give row ``i`` the adapter ``adapter_names[i]``.

        ``__base__`` rows get no LoRA term.

        Raises:
            ValueError: a name no layer knows (a typo would otherwise silently mean the base).
        """
        rows = tuple(adapter_names)
        known = {n for layer in self.layers for n in layer.names}
        unknown = set(rows) - known - {BASE}
        if unknown:
            raise ValueError(f"unknown adapter(s): {', '.join(sorted(unknown))}")
        for layer in self.layers:
            if not set(rows) & set(layer.names):  # no row uses this layer's adapters
                layer.module.forward = types.MethodType(_base_forward, layer.module)
                continue
            mask, scale = self._mask(layer, rows)
            if layer.kind == "linear":
                groups = self._groups(layer, rows)
                layer.module.forward = types.MethodType(
                    lambda mod, x, *a, _l=layer, _m=mask, _s=scale, _g=groups, **kw:
                    _linear_forward(mod, _l, _m, _s, _g, x, *a, **kw), layer.module)
            else:
                layer.module.forward = types.MethodType(
                    lambda mod, x, *a, _l=layer, _m=mask, _s=scale, **kw: _embedding_forward(
                        mod, _l, _m, _s, x, *a, **kw), layer.module)
        try:
            yield
        finally:
            for layer in self.layers:
                layer.module.__dict__.pop("forward", None)


def _base_forward(module: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    return module.base_layer(x, *args, **kwargs)


def _check_rows(x: Any, mask: Any) -> None:
    if x.shape[0] != mask.shape[0]:
        raise ValueError(f"batched LoRA: {x.shape[0]} rows in, {mask.shape[0]} adapter names")


def _linear_forward(module: Any, layer: _Layer, mask: Any, scale: Any,
                    groups: tuple[tuple[str, Any], ...], x: Any, *args: Any,
                    **kwargs: Any) -> Any:
    result = module.base_layer(x, *args, **kwargs)
    _check_rows(x, mask)
    if x.dim() == 3 and x.shape[0] * x.shape[1] >= GROUPED_MIN_TOKENS:
        for name, rows in groups:  # PEFT's own arithmetic, on the adapter's rows only
            lora_a, lora_b = module.lora_A[name], module.lora_B[name]
            part = lora_b(lora_a(x[rows].to(lora_a.weight.dtype))) * module.scaling[name]
            result[rows] += part.to(result.dtype)
        return result
    xa = x.to(layer.a_cat.dtype)
    if xa.dim() == 2:  # (rows, in): no sequence axis
        shrunk = (xa @ layer.a_cat.T) * mask[:, 0]
        lora = (shrunk @ layer.b_cat_t) * scale[:, 0]
    else:
        lora = (((xa @ layer.a_cat.T) * mask) @ layer.b_cat_t) * scale
    return result + lora.to(result.dtype)


def _embedding_forward(module: Any, layer: _Layer, mask: Any, scale: Any, x: Any, *args: Any,
                       **kwargs: Any) -> Any:
    result = module.base_layer(x, *args, **kwargs)
    _check_rows(x, mask)
    after_a = module._embed(x, layer.a_cat)
    lora = ((after_a * mask) @ layer.b_cat_t) * scale
    if layer.embed_scale is not None:
        lora = lora * layer.embed_scale.to(lora.dtype)
    return result + lora

"""Faster Linear layers for inference on CPU: the same weights in a layout the kernels read fast.

Decoding reads every weight once per step, so on CPU its speed is how fast the matrix kernels
stream the weights. Measured on SmolLM2-135M (bench/decode_floor.py, bench/app_latency.py),
PyTorch's default ``F.linear`` on a row-major ``[out, in]`` weight (MKL) is the slowest way:

- ``column``: the weight stored column-major (its transpose contiguous), in place, no extra
  memory. MKL then reads it faster for one row (batch-1 decode step -16 to -21%).
- ``packed``: oneDNN's own blocked layout, prepared once (``mkldnn._reorder_linear_weight``,
  what ``torch.compile``'s CPU freezing uses) and applied by ``mkldnn._linear_pointwise``. It
  needs no packing per call, which MKL pays on every small multi-row product: faster at one
  row and much faster at the app's three (-40%), a bit faster for evaluation's large batches.
  It costs a second copy of the Linear weights; the loaded ones stay for PEFT and for
  anything that reads them.

``row`` keeps the weights as loaded. Every layout computes the same products up to float
rounding; tests and the benches check the greedy answers stay identical.
"""

from __future__ import annotations

from typing import Any

from finetune.errors import UsageError

WEIGHT_LAYOUTS = ("auto", "row", "column", "packed")
# Below this many bytes of Linear weights the model stays in the CPU's cache between decoding
# steps and the layout does not matter.
LARGE_MODEL_BYTES = 64 * 2**20


def linear_weight_bytes(model: Any) -> int:
    """Bytes of every ``nn.Linear`` weight of ``model``, tied weights counted once."""
    weights = {m.weight.data_ptr(): m.weight for m in _linears(model)}
    return sum(w.numel() * w.element_size() for w in weights.values())


def _linears(model: Any) -> list[Any]:
    import torch

    # Quantised weights (integer storage) are packed by their own kernels: left alone.
    return [m for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m.weight.is_floating_point()]


def packed_available() -> bool:
    """Whether this PyTorch build has oneDNN's prepacked Linear kernels."""
    import torch

    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_reorder_linear_weight")
            and hasattr(ops, "_linear_pointwise"))


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def choose_layout(model: Any, requested: str) -> str:
    """The layout ``requested`` stands for on this model.

    ``auto`` resolves, for a model over 64 MiB of Linear weights on CPU, to ``packed`` when
    it is fp32, oneDNN is there and the second copy leaves memory to spare (available memory
    at least 4x the Linear weights), else to ``column``; to ``row`` for anything else.

    Raises:
        UsageError: an unknown layout, or ``column``/``packed`` for a model not on CPU.
    """
    if requested not in WEIGHT_LAYOUTS:
        raise UsageError(f"weight_layout: one of {', '.join(WEIGHT_LAYOUTS)}, got {requested!r}")
    import torch

    param = next(model.parameters())
    on_cpu = param.device.type == "cpu"
    if requested == "auto":
        size = linear_weight_bytes(model)
        if not on_cpu or size < LARGE_MODEL_BYTES:
            return "row"
        free = available_memory_bytes()
        roomy = free is None or free >= 4 * size
        fits = param.dtype == torch.float32 and packed_available() and roomy
        return "packed" if fits else "column"
    if requested != "row" and not on_cpu:
        raise UsageError(f"weight_layout {requested!r}: a CPU layout; the model is on "
                         f"{param.device}")
    if requested == "packed" and not packed_available():
        raise UsageError("weight_layout 'packed': this PyTorch build has no oneDNN (mkldnn)")
    return requested


def apply_layout(model: Any, layout: str) -> int:
    """Put every float ``nn.Linear`` of ``model`` in ``layout`` (from :func:`choose_layout`).

    Modules and parameters stay the same objects, so PEFT wraps them as usual and tied
    weights stay tied. ``packed`` replaces each module's ``forward``; the weights must not
    change afterwards (the engine never changes its base's weights).

    Returns:
        The number of Linear layers changed.
    """
    import torch

    layers = _linears(model) if layout in ("column", "packed") else []
    with torch.no_grad():
        for m in layers:
            if layout == "column":
                m.weight.data = m.weight.data.t().contiguous().t()
            else:
                m.forward = _packed_forward(m)
    return len(layers)


def _packed_forward(module: Any) -> Any:
    import torch

    # The batch-size hint picks oneDNN's block shape; 8 measured as fast as exact hints from
    # one row to thousands (bench/decode_floor.py's 1- and 3-row steps, evaluation batches).
    packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), 8)
    bias = None if module.bias is None else module.bias.detach()
    linear = torch.ops.mkldnn._linear_pointwise

    def forward(x: Any) -> Any:
        if torch.is_grad_enabled() and (x.requires_grad or module.weight.requires_grad):
            # oneDNN's prepacked kernel has no backward
            return torch.nn.functional.linear(x, module.weight, module.bias)
        return linear(x.contiguous(), packed, bias, "none", [], "")

    return forward

"""Where this process trains: its device, rank, trackers, CPU threads and process group.

``torchrun`` / ``accelerate launch`` set the environment :meth:`Launch.from_env` reads.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig
from finetune.errors import UsageError


@dataclass(frozen=True)
class Launch:
    """Where this process runs: its device, its rank, and the trackers it reports to."""

    device: str
    world_size: int
    is_main: bool
    report_to: list[str]

    @classmethod
    def from_env(cls, config: TrainConfig) -> Launch:
        """Read ``torchrun``'s environment; refuse QLoRA off CUDA and missing trackers."""
        device = _resolve_device(config)
        if config.method == "qlora" and not device.startswith("cuda"):
            raise UsageError("method: qlora needs a CUDA GPU (4-bit bitsandbytes); use method=lora")
        return cls(device, int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("RANK", "0")) == 0, _report_to(config))


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` CPU threads (``None``: as they are), then restore the count.

    The count is process-wide: two processes each running torch's default (one thread per
    core) on a shared machine spin-wait for each other: a tiny demo's evaluation took 177-446 s
    in CI beside a second build, and ~50 s pinned to one thread.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pinned_to_config(fn: Callable[..., Path]) -> Callable[..., Path]:
    """Run ``fn(config, ...)`` with ``config.threads`` CPU threads, then restore the count.

    The app trains in a background thread of the serving process, which keeps its own count.
    """

    @functools.wraps(fn)
    def wrapper(config: TrainConfig, *args: Any, **kwargs: Any) -> Path:
        with pinned_threads(config.threads):
            return fn(config, *args, **kwargs)

    return wrapper


def _resolve_device(config: TrainConfig) -> str:
    from finetune.models import pick_device

    device = pick_device(config.device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def _report_to(config: TrainConfig) -> list[str]:
    import importlib.util

    for name in config.report_to:
        if importlib.util.find_spec(name) is None:
            raise UsageError(
                f"report_to: {name} is not installed; pip install 'tuneproof[track]' or drop it"
            )
    return list(config.report_to)


def leave_process_group() -> None:
    """Tear the distributed process group down, if one is up."""
    # A rank that exits with its gloo group still up can abort in the C++ teardown
    # ("terminate called without an active exception"), failing the launch at random.
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world_size: int) -> None:
    """Wait for every process of a multi-process launch."""
    if world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()

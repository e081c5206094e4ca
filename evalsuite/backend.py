"""What the runner, the fairness evaluation and the app need from a model backend.

Two backends implement it: :class:`evalsuite.engine.Engine` (the base and its adapters in
this process) and :class:`evalsuite.server_backend.ServerBackend` (an OpenAI-compatible server
such as vLLM, one or several). Both render prompts with the base's own tokenizer, so a prompt
is the same tokens whichever answers it; ``BASE`` names the base model in both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from evalsuite.generation import Generation, GenerationConfig


@runtime_checkable
class Backend(Protocol):
    """The generation interface shared by the in-process engine and a server backend."""

    base_ref: str
    tokenizer: Any
    batch_size: int
    max_new_tokens_cap: int
    adapter_dirs: dict[str, Path]
    adapter_warnings: dict[str, list[str]]

    @property
    def model_names(self) -> list[str]:
        """``[BASE, *adapter names]``."""

    @property
    def dtype_name(self) -> str:
        """The arithmetic of the answers (``float32``...), as far as the backend knows it."""

    def add_adapter(self, name: str, path: str | Path) -> None:
        """Serve the adapter at ``path`` under ``name``."""

    def render(self, messages: list[dict[str, str]]) -> str:
        """The chat-template text of ``messages`` followed by the assistant's opening."""

    def generate(
        self, prompts: Sequence[list[dict[str, str]]], models: Sequence[str],
        config: GenerationConfig | None = None, progress: bool = False,
    ) -> list[list[Generation]]:
        """``result[i][j]``: prompt ``i`` answered by ``models[j]``."""

    def stream(
        self, messages: list[dict[str, str]] | Sequence[list[dict[str, str]]],
        models: Sequence[str], config: GenerationConfig | None = None,
    ) -> Iterator[list[str]]:
        """Cumulative text of each model, yielded as it grows."""

    def score_continuations(
        self, contexts: Sequence[str], continuations: Sequence[str], models: Sequence[str],
        progress: bool = False,
    ) -> list[list[tuple[float, int]]]:
        """``[item][model]`` -> (summed log-probability in nats, continuation tokens)."""

    def loglikelihood(
        self, contexts: Sequence[str], continuations: Sequence[str], models: Sequence[str],
    ) -> list[list[float]]:
        """``[item][model]`` summed log-probability in nats."""


def describe(backend: Any) -> dict[str, Any]:
    """Provenance of a backend for results.json (never an API key).

    Its kind, and for servers the URLs, server versions and model ids.
    """
    own = getattr(backend, "describe", None)
    if callable(own):
        return own()
    return {"kind": "in-process", "device": str(getattr(backend, "device", "")),
            "dtype": getattr(backend, "dtype_name", None)}


def open_backend(
    urls: Sequence[str], base: str, adapters: Mapping[str, str | Path] | None = None,
    **options: Any,
) -> Any:
    """A :class:`~evalsuite.server_backend.ServerBackend` on ``urls`` (imported lazily)."""
    from evalsuite.server_backend import ServerBackend

    return ServerBackend(urls, base, adapters, **options)

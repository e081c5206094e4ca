"""What every tab shares: the engine, the vote store, the model names and the input caps.

Requests name models only; :meth:`AppContext.check_models` turns names into the engine's
names and refuses anything else (a path above all), and :func:`friendly` turns errors into
one-line ``gr.Error`` messages instead of stack traces.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from finetune.errors import TuneproofError, UsageError, first_line
from tuneproof_app.registry import BASE_LABEL, Registry, check_name
from tuneproof_app.votes import VoteStore

log = logging.getLogger("tuneproof_app")

MAX_ADAPTERS = 3
"""Compare shows the base and at most this many adapters side by side."""


def load_adapters(engine: Any, registry: Registry, skip: Sequence[str] = ()) -> list[str]:
    """Load the registry's adapters into ``engine``, skipping (with a warning) any it refuses.

    The one path adapters join an engine by, at start-up and during a background build: one
    bad run (another base, a broken folder) never stops the app or the other adapters.

    Returns:
        The names loaded.
    """
    added = []
    for adapter in registry.adapters():
        if adapter.name in skip:
            continue
        try:
            engine.add_adapter(adapter.name, adapter.adapter_dir)
        except Exception as err:  # noqa: BLE001 - any failure skips this adapter only
            log.warning("adapter %s not served: %s", adapter.name, first_line(err))
            continue
        added.append(adapter.name)
    return added


@dataclass
class AppContext:
    """Shared state of one app.

    Args:
        engine: An ``evalsuite.engine.Engine`` with the registry's adapters loaded.
        store: The arena's vote store.
        runs_dir: Runs directory the adapters came from (for reports and curves).
        results_dirs: Evaluation output folders (``results.json``, ``report.md``...).
        examples: Example conversations (held-out prompts): lists of chat messages.
        system_prompt: Default system prompt.
        max_prompt_chars: Longest message accepted, in characters.
        max_new_tokens_cap: Largest ``max_new_tokens`` a request may ask for.
        registry: The runs registry (reports, data reports, training curves).
        heldout: Held-out data file the examples come from (read again once a background
            build has written it).
        builder: The background demo build (``tuneproof_app.background.DemoBuilder``), if any.
        version: Bumped whenever models or reports change; open pages compare it with the
            version they show to know when to refresh their lists.
        on_change: Called (in the build thread) before each bump: the UI updates the
            server-side choices there.
    """

    engine: Any
    store: VoteStore
    runs_dir: Path | None = None
    results_dirs: list[Path] = field(default_factory=list)
    examples: list[list[dict[str, str]]] = field(default_factory=list)
    system_prompt: str = ""
    max_prompt_chars: int = 2000
    max_new_tokens_cap: int = 64
    registry: Registry | None = None
    heldout: Path | None = None
    builder: Any = None
    version: int = 0
    on_change: list[Callable[[], Any]] = field(default_factory=list, repr=False)
    _join_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.max_new_tokens_cap = min(self.max_new_tokens_cap, self.engine.max_new_tokens_cap)

    def join_new_adapters(self, final: bool = False) -> list[str]:
        """Load the adapters the runs registry gained since the engine was built.

        Called by the background build after each step (``final`` after the last); only
        registry names are ever loaded. A change bumps :attr:`version`.

        Returns:
            The names loaded now.
        """
        from tuneproof_app.heldout_data import load_examples

        with self._join_lock:
            added = []
            if self.registry is not None:
                self.registry.refresh()
                added = load_adapters(self.engine, self.registry, skip=self.adapters)
                for name in added:
                    print(f"app: adapter {name} joined the app "
                          f"(from {self.registry.runs_dir})", flush=True)
            if not self.examples and self.heldout is not None and self.heldout.is_file():
                self.examples = load_examples(self.heldout)
                self.system_prompt = self.system_prompt or next(
                    (m["content"] for c in self.examples[:1] for m in c
                     if m["role"] == "system"), "")
            if added or final:
                for hook in self.on_change:
                    hook()
                self.version += 1
            return added

    @property
    def adapters(self) -> list[str]:
        """Adapter names the engine serves (loaded from the runs registry)."""
        from evalsuite.engine import BASE

        return [m for m in self.engine.model_names if m != BASE]

    @property
    def models(self) -> list[str]:
        """Every servable model by its app name: ``base`` first, then the adapters."""
        return [BASE_LABEL, *self.adapters]

    def check_models(self, names: Sequence[str] | None, *, max_adapters: int | None = None,
                     min_models: int = 1) -> list[str]:
        """Validate model names from a request; returns them in the app's order.

        Raises:
            UsageError: a path or unknown name, too few models or too many adapters.
        """
        if isinstance(names, str):
            names = [names]
        chosen = [check_name(n, self.adapters, allow_base=True) for n in (names or [])]
        chosen = [m for m in self.models if m in set(chosen)]
        if len(chosen) < min_models:
            raise UsageError(f"models: choose at least {min_models} of {', '.join(self.models)}")
        n_adapters = sum(m != BASE_LABEL for m in chosen)
        if max_adapters is not None and n_adapters > max_adapters:
            raise UsageError(f"models: at most {max_adapters} adapters at once, got {n_adapters}")
        return chosen

    def engine_name(self, name: str) -> str:
        """The engine's name for an app model name (``base`` -> ``__base__``)."""
        from evalsuite.engine import BASE

        return BASE if name == BASE_LABEL else name

    def notice(self, name: str) -> str:
        """The engine's warnings on a model (e.g. a no-op adapter) as one line; "" if none."""
        warnings = getattr(self.engine, "adapter_warnings", {}).get(self.engine_name(name), [])
        return " ".join(f"Warning: {w}" for w in warnings)

    def check_text(self, text: object, what: str = "message") -> str:
        """A non-empty message within the length cap."""
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{what}: type a message first")
        if len(text) > self.max_prompt_chars:
            raise UsageError(
                f"{what}: {len(text)} characters, more than the cap of {self.max_prompt_chars}"
            )
        return text.strip()

    def generation_config(self, max_new_tokens: Any, temperature: Any = 0.0, top_p: Any = 1.0,
                          seed: Any = None) -> Any:
        """An engine ``GenerationConfig`` from request values, capped."""
        from evalsuite.engine import GenerationConfig

        try:
            n = int(max_new_tokens)
            temp, p = float(temperature), float(top_p)
            s = None if seed in (None, "", -1) else int(seed)
        except (TypeError, ValueError):
            raise UsageError("generation settings: numbers expected") from None
        if not 1 <= n <= self.max_new_tokens_cap:
            raise UsageError(
                f"max_new_tokens: {n} is outside 1..{self.max_new_tokens_cap} (the app's cap)"
            )
        return GenerationConfig(max_new_tokens=n, temperature=temp, top_p=p, seed=s)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show errors as one-line ``gr.Error`` messages; unexpected ones are logged, not shown."""

    def translate(err: BaseException) -> gr.Error:
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, TuneproofError):
            return gr.Error(str(err), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"internal error ({type(err).__name__}); see the server log",
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every error becomes a message
                raise translate(err) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise translate(err) from None

    return wrapper

"""The demo adapters, built in a background thread while the app already serves the base.

One :class:`DemoBuilder` per app runs ``tuneproof_demo.pipeline.build_demo`` (which reuses the
steps an earlier start finished) and reports its progress as a :class:`BuildStatus`; the app
polls it for the page's status line and is told after every step, so that adapters trained so
far join the engine and the model lists without a restart.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.errors import TuneproofError

log = logging.getLogger("tuneproof_app")

BUILDING, READY, FAILED = "building", "ready", "failed"


@dataclass(frozen=True)
class BuildStatus:
    """Where the background build stands.

    Attributes:
        state: ``building``, ``ready`` or ``failed``.
        fraction: Share of the build done, 0..1 (build_demo's own estimate).
        message: The step under way (or the last one).
        error: One-line error of a failed build, else ``""``.
        seconds: Seconds since the build started (until it ended, once it has).
    """

    state: str
    fraction: float
    message: str
    error: str
    seconds: float

    @property
    def done(self) -> bool:
        """Whether the build has ended, well or not."""
        return self.state != BUILDING


def one_line(err: BaseException) -> str:
    """An error as one line: our own errors as they are, others with their type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, TuneproofError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class DemoBuilder:
    """Builds the demo in one daemon thread; ``status()`` may be read from any thread.

    Args:
        workdir: The demo folder (``data/``, ``runs/``, ``eval/``).
        base: Base model reference the adapters are trained on.
        seed: Seed of the demo data and trainings.
        on_step: Called (from the build thread) after every step and once at the end, with
            ``final=True`` then; the app loads new adapters there. Its errors are logged.
        build: The build function; default ``tuneproof_demo.pipeline.build_demo``.
        echo: Where progress lines go (default stdout, the app's log).
        build_kwargs: More keyword arguments for ``build`` (``demo_config``,
            ``train_overrides``...).
    """

    def __init__(self, workdir: str | Path, base: str, *, seed: int = 0,
                 on_step: Callable[..., Any] | None = None,
                 build: Callable[..., Any] | None = None,
                 echo: Callable[[str], Any] | None = None, **build_kwargs: Any) -> None:
        self.workdir = Path(workdir)
        self.base = base
        self.seed = seed
        self.on_step = on_step
        self.build = build
        self.echo = echo or (lambda line: print(line, flush=True))
        self.build_kwargs = build_kwargs
        self.paths: dict[str, Path] | None = None
        self._lock = threading.Lock()
        self._status = BuildStatus(BUILDING, 0.0, "waiting to start", "", 0.0)
        self._t0 = time.monotonic()
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()

    def start(self) -> DemoBuilder:
        """Start the build thread (once); returns ``self``."""
        if self._thread is None:
            self._t0 = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="demo-build", daemon=True)
            self._thread.start()
        return self

    def status(self) -> BuildStatus:
        """The current status, with the elapsed time (and the training's step, if any)."""
        with self._lock:
            s = self._status
        if s.done:
            return s
        message = s.message
        step = training_step(self.workdir / "runs", message)
        if step:
            message = f"{message} ({step})"
        return BuildStatus(s.state, s.fraction, message, s.error, time.monotonic() - self._t0)

    def wait(self, timeout: float | None = None) -> BuildStatus:
        """Block until the build ends or ``timeout`` seconds pass; returns the status."""
        self._finished.wait(timeout)
        return self.status()

    def _set(self, **changes: Any) -> None:
        with self._lock:
            current = vars(self._status) | changes
            self._status = BuildStatus(**current)

    def _progress(self, fraction: float, message: str) -> None:
        self._set(fraction=float(fraction), message=str(message))
        self.echo(f"demo [{fraction:4.0%}] {message}")
        self._notify(final=False)

    def _notify(self, final: bool) -> None:
        if self.on_step is None:
            return
        try:
            self.on_step(final=final)
        except Exception:  # noqa: BLE001 - a bad adapter must not stop the build or the app
            log.exception("demo build: loading what was built failed")

    def _run(self) -> None:
        build = self.build
        if build is None:
            from tuneproof_demo.pipeline import build_demo as build
        try:
            self.paths = build(self.workdir, seed=self.seed, progress=self._progress,
                               base=self.base, **self.build_kwargs)
        except Exception as err:  # noqa: BLE001 - any failure is shown; the base keeps serving
            line = one_line(err)
            if not isinstance(err, TuneproofError):
                log.error("demo build failed", exc_info=err)
            print(f"app: demo build failed: {line}", file=sys.stderr, flush=True)
            self._notify(final=True)  # adapters finished before the failure still join
            self._set(state=FAILED, error=line, seconds=time.monotonic() - self._t0)
        else:
            self._notify(final=True)
            self._set(state=READY, fraction=1.0, seconds=time.monotonic() - self._t0)
            self.echo(f"app: demo ready in {self.workdir} ({self.status().seconds:.0f} s); "
                      "its adapters and reports joined the app")
        self._finished.set()


def training_step(runs_dir: Path, message: str) -> str:
    """The last logged step of the run the build message names, while it trains ("" if none).

    build_demo reports whole steps only; a training's own ``metrics.jsonl`` (in its partial
    run folder) tells how far it got, so that a long training does not look stuck.
    """
    from finetune.rundir import RunDir, read_jsonl

    for name, partial in RunDir.partials(runs_dir).items():
        if f" {name} " not in f" {message} ":
            continue
        rows = [r for r in read_jsonl(partial.metrics) if r.get("step") is not None]
        if not rows:
            return "starting"
        last = rows[-1]
        loss = next((r["train_loss"] for r in reversed(rows)
                     if r.get("train_loss") is not None), None)
        shown = f"step {last['step']}, epoch {float(last.get('epoch') or 0):.2f}"
        return shown + (f", train loss {float(loss):.3f}" if loss is not None else "")
    return ""


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def status_html(status: BuildStatus, base: str, adapters: list[str]) -> str:
    """The page's status line of the background build (a progress bar while it runs)."""
    from html import escape

    served = ", ".join(f"<code>{escape(a)}</code>" for a in adapters) or "none yet"
    if status.state == BUILDING:
        pct = round(100 * status.fraction)
        return (f'<div class="tp-build"><progress max="100" value="{pct}"></progress> '
                f"<b>{pct}%</b> Building the demo adapters in the background on "
                f"<code>{escape(base)}</code>: {escape(status.message)} "
                f"({_duration(status.seconds)} so far). The base answers meanwhile; each "
                f"adapter joins the model lists when trained (served now: {served}).</div>")
    if status.state == READY:
        return (f'<div class="tp-build">Demo ready ({_duration(status.seconds)}): {served} '
                "joined the model lists, the arena and the reports.</div>")
    return (f'<div class="tp-build tp-build-failed"><b>Demo build failed:</b> '
            f"{escape(status.error)}. The app keeps serving the base"
            f"{' and ' + served if adapters else ''}; see the server log, fix the cause and "
            "restart the app to retry.</div>")

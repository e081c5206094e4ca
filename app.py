"""Serve the tuneproof app: base and adapters side by side, arena, probe, reports.

``python app.py [--base REF] [--runs DIR] [--host H] [--port 7860] [--auth USER:PASS]``.
Every option also comes from the environment (``TUNEPROOF_BASE``, ``TUNEPROOF_RUNS``,
``TUNEPROOF_AUTH``, ``TUNEPROOF_HOST``, ``TUNEPROOF_PORT``...). With no adapters in the runs
directory it serves the base at once and builds the demo (data, biased and fair adapters,
evaluation) into the demo folder in the background, with progress in the page and on the
console; the adapters join the app as they are trained, and later starts reuse them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from finetune.errors import TuneproofError, UsageError
from finetune.paths import tuneproof_home


def _env(name: str, default: Any = None) -> Any:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _env_int(names: tuple[str, ...], default: int | None) -> int | None:
    for name in names:
        value = _env(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                raise UsageError(f"{name}: expected an integer, got {value!r}") from None
    return default


def build_parser() -> argparse.ArgumentParser:
    """The app's options, defaults read from the environment (tests/test_readme.py reads it)."""
    p = argparse.ArgumentParser(prog="app.py", description=__doc__.splitlines()[0])
    p.add_argument("--base", default=_env("TUNEPROOF_BASE"),
                   help="base model: smollm2, tiny, a local folder, a .gguf file or a hub id "
                        "(TUNEPROOF_BASE; default smollm2 when available offline, else tiny)")
    p.add_argument("--runs", default=_env("TUNEPROOF_RUNS", "runs"),
                   help="runs directory; adapters are served by run name (TUNEPROOF_RUNS)")
    p.add_argument("--demo-dir", default=_env("TUNEPROOF_DEMO_DIR"),
                   help="where the demo is built when --runs has no adapters "
                        "(TUNEPROOF_DEMO_DIR; default: beside the runs directory, make demo's "
                        "folder: demo/seed0 on tiny, demo/NAME-seed0 on another base)")
    p.add_argument("--no-demo", action="store_true",
                   help="never build the demo; serve the base alone if there are no adapters")
    p.add_argument("--results", action="append", default=None,
                   help="folder with evaluation outputs (results.json); repeatable "
                        "(TUNEPROOF_RESULTS, ':'-separated; default: eval/ and out/ beside "
                        "the runs directory, where evalsuite run writes)")
    p.add_argument("--heldout", default=_env("TUNEPROOF_HELDOUT"),
                   help="held-out data: example prompts and the arena walk (TUNEPROOF_HELDOUT)")
    p.add_argument("--votes", default=_env("TUNEPROOF_VOTES"),
                   help="arena votes SQLite file (TUNEPROOF_VOTES; default "
                        "$TUNEPROOF_HOME/arena/votes.sqlite)")
    p.add_argument("--host", default=_env("TUNEPROOF_HOST", _env("GRADIO_SERVER_NAME",
                                                                 "127.0.0.1")),
                   help="address to listen on (TUNEPROOF_HOST or GRADIO_SERVER_NAME; "
                        "default 127.0.0.1, 0.0.0.0 to serve the network)")
    p.add_argument("--port", type=int,
                   default=_env_int(("TUNEPROOF_PORT", "GRADIO_SERVER_PORT"), 7860),
                   help="port (TUNEPROOF_PORT or GRADIO_SERVER_PORT; default 7860)")
    p.add_argument("--auth", default=_env("TUNEPROOF_AUTH"),
                   help="USER:PASS to require a login (TUNEPROOF_AUTH)")
    p.add_argument("--device", default=_env("TUNEPROOF_DEVICE"), help="cpu, cuda... (default auto)")
    p.add_argument("--backend", action="append", default=None, metavar="URL",
                   help="OpenAI-compatible server(s) (vLLM) serving --base and the adapters, "
                        "instead of loading them here; implies --no-demo (docs/serving.md)")
    p.add_argument("--max-new-tokens", type=int,
                   default=_env_int(("TUNEPROOF_MAX_NEW_TOKENS",), 64),
                   help="cap on max_new_tokens per request (TUNEPROOF_MAX_NEW_TOKENS)")
    p.add_argument("--queue-size", type=int, default=_env_int(("TUNEPROOF_QUEUE_SIZE",), 64),
                   help="requests that may wait before new ones are refused")
    p.add_argument("--threads", type=int, default=_env_int(("TUNEPROOF_THREADS",), None),
                   help="torch CPU threads (TUNEPROOF_THREADS; default torch's choice)")
    p.add_argument("--axes-file", default=_env("TUNEPROOF_AXES_FILE"), metavar="YAML",
                   help="your own axes (axes.yaml) for the probe (TUNEPROOF_AXES_FILE)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options from the command line, defaults from the environment."""
    args = build_parser().parse_args(argv)
    if args.axes_file:
        from finetune.data.axes import use_axes_file

        use_axes_file(args.axes_file)  # a bad file is one line, before anything loads
    if args.base is None:
        from finetune.models import default_base, why_not_smollm2

        args.base = default_base()
        if args.base != "smollm2":
            print(f"app: serving tiny, a random-weights test model: {why_not_smollm2()}",
                  file=sys.stderr, flush=True)
    if args.results is None:
        env = _env("TUNEPROOF_RESULTS")
        args.results = [r for r in env.split(":") if r] if env else []
    if args.auth is not None and (":" not in args.auth or args.auth.startswith(":")):
        raise UsageError("--auth: expected USER:PASS")
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is not a port number")
    return args


def default_demo_dir(runs: Path, base: str) -> Path:
    """The folder ``make demo`` builds for ``base`` (seed 0), beside the runs directory.

    One per base, so that changing the base never serves adapters trained on another.
    """
    name = "seed0" if base == "tiny" else f"{Path(base.rstrip('/')).name}-seed0"
    return runs.resolve().parent / "demo" / name


def prepare(args: argparse.Namespace, demo_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Find the adapters, results and held-out data the app will serve.

    With no adapters in ``--runs`` (and no ``--no-demo``, or ``--backend``, which implies it)
    the app serves the demo folder: a finished demo as it is, else whatever is built so far,
    with ``build`` set to the demo folder so that :func:`build` builds the rest in the
    background. A demo built with other
    settings than today's recipe (``demo_options`` as :func:`build` gets them) is set aside
    (renamed, not deleted) and built anew.
    """
    from tuneproof_app.registry import Registry
    from tuneproof_demo.pipeline import is_stale, set_aside

    runs = Path(args.runs)
    demo_dir = Path(args.demo_dir) if args.demo_dir else default_demo_dir(runs, args.base)
    results = [Path(r) for r in args.results]
    heldout = Path(args.heldout) if args.heldout else None
    pending = None
    no_demo = args.no_demo
    if getattr(args, "backend", None) and not no_demo and not len(Registry(runs)):
        # The models run on the server: training the demo here would spend this machine on
        # adapters the server was not started with (and may not be able to read).
        print(f"app: --backend implies --no-demo (the demo trains here, the server runs the "
              f"models); serving the adapters in {runs}", flush=True)
        no_demo = True
    if not len(Registry(runs)) and not no_demo:
        runs, evaldir = demo_dir / "runs", demo_dir / "eval"
        recipe = {k: v for k, v in (demo_options or {}).items()
                  if k in ("demo_config", "train_overrides")}
        if is_stale(demo_dir, args.base, **recipe):
            print(f"app: {demo_dir} holds a demo built with other settings; set aside as "
                  f"{set_aside(demo_dir)}", flush=True)
        if len(Registry(runs)) and (evaldir / "results.json").is_file():
            print(f"app: reusing the demo in {demo_dir}", flush=True)
        else:
            pending = demo_dir
            print(f"app: no adapters yet; serving the base now and building the demo in "
                  f"{demo_dir} in the background (data, audit, biased and fair adapters, "
                  "evaluation; minutes on a CPU); the adapters join the app when trained",
                  flush=True)
        results = results or [evaldir]
        heldout = heldout or demo_dir / "data" / "heldout.jsonl"
    if heldout is None and (demo_dir / "data" / "heldout.jsonl").is_file():
        heldout = demo_dir / "data" / "heldout.jsonl"
    if not results:
        # eval/: where `evalsuite run` writes by default, so a user's evaluation shows up
        # under Reports without --results.
        results = [d for d in (runs.resolve().parent / "eval", runs.resolve().parent / "out",
                               demo_dir) if d.is_dir()]
    return {"runs": runs, "results": results, "heldout": heldout, "build": pending}


def build(args: argparse.Namespace, **demo_options: Any) -> Any:
    """Load the engine with the registry's adapters and build the Blocks app.

    When the demo is still to build, its :class:`~tuneproof_app.background.DemoBuilder` is
    started here, after the base has loaded; ``demo_options`` go to it (``demo_config``,
    ``train_overrides``, ``build``: smaller demos for tests).
    """
    from evalsuite.engine import Engine
    from tuneproof_app import create_app
    from tuneproof_app.background import DemoBuilder
    from tuneproof_app.context import load_adapters
    from tuneproof_app.registry import Registry

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    where = prepare(args, demo_options)
    registry = Registry(where["runs"])
    if args.backend:
        from evalsuite.backend import open_backend

        engine = open_backend(args.backend, args.base,
                              max_new_tokens_cap=max(args.max_new_tokens, 1))
    else:
        engine = Engine(args.base, device=args.device,
                        max_new_tokens_cap=max(args.max_new_tokens, 1))
    # The same skip-and-warn path as the background join: one refused run (say, trained on
    # another base) is left out with a warning instead of stopping the app.
    adapters = load_adapters(engine, registry)
    print(f"app: base {args.base}; adapters {', '.join(adapters) or '(none yet)'} from "
          f"{where['runs']}", flush=True)
    builder = None
    if where["build"] is not None:
        builder = DemoBuilder(where["build"], args.base, **demo_options)
    votes = Path(args.votes) if args.votes else tuneproof_home() / "arena" / "votes.sqlite"
    blocks = create_app(engine, where["runs"], votes, results_dirs=where["results"],
                        heldout=where["heldout"], max_new_tokens_cap=args.max_new_tokens,
                        queue_size=args.queue_size, builder=builder)
    if builder is not None:
        builder.start()
    return blocks


def serve(blocks: Any, args: argparse.Namespace, **launch_kwargs: Any) -> Any:
    """Launch the built app with the options' host, port and optional login."""
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    return blocks.launch(server_name=args.host, server_port=args.port, auth=auth,
                         show_error=True, css=_css(), **launch_kwargs)


def main(argv: list[str] | None = None) -> int:
    """Parse, build and serve until interrupted; errors print as one line (exit 2/1)."""
    try:
        args = parse_args(argv)
        blocks = build(args)
    except TuneproofError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    serve(blocks, args)
    return 0


def _css() -> str:
    from tuneproof_app.ui import CSS

    return CSS


if __name__ == "__main__":
    sys.exit(main())

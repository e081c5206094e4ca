"""app.py: options from flags and environment, one-line errors, reuse of an existing demo."""

import shutil

import pytest

import app


def test_options_come_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEPROOF_BASE", "./my-base")
    monkeypatch.setenv("TUNEPROOF_RUNS", str(tmp_path / "r"))
    monkeypatch.setenv("TUNEPROOF_AUTH", "ann:secret")
    monkeypatch.setenv("TUNEPROOF_PORT", "7999")
    monkeypatch.setenv("TUNEPROOF_RESULTS", f"{tmp_path}/a:{tmp_path}/b")
    args = app.parse_args([])
    assert (args.base, args.runs, args.auth, args.port) == (
        "./my-base", str(tmp_path / "r"), "ann:secret", 7999)
    assert args.results == [f"{tmp_path}/a", f"{tmp_path}/b"]
    flags = app.parse_args(["--base", "tiny", "--port", "8001", "--host", "0.0.0.0"])
    assert (flags.base, flags.port, flags.host) == ("tiny", 8001, "0.0.0.0")


@pytest.mark.parametrize("env, value, message", [
    ("TUNEPROOF_PORT", "http", "TUNEPROOF_PORT: expected an integer, got 'http'"),
    ("TUNEPROOF_AUTH", "nopassword", "--auth: expected USER:PASS"),
    ("TUNEPROOF_PORT", "70000", "--port: 70000 is not a port number"),
])
def test_bad_options_are_one_line_errors(monkeypatch, capsys, env, value, message):
    monkeypatch.setenv(env, value)
    assert app.main([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"


def test_build_serves_the_registry_adapters_by_name(app_runs_dir, tmp_path):
    args = app.parse_args(["--base", "tiny", "--runs", str(app_runs_dir), "--no-demo", "--votes",
                           str(tmp_path / "v.sqlite"), "--max-new-tokens", "16"])
    blocks = app.build(args)
    ctx = blocks.tuneproof
    assert ctx.models == ["base", "biased", "fair"]
    assert ctx.max_new_tokens_cap == 16
    assert (tmp_path / "v.sqlite").is_file()
    assert {n: str(p) for n, p in ctx.engine.adapter_dirs.items()} == {
        n: str(app_runs_dir / n / "adapter") for n in ("biased", "fair")}


def test_one_adapter_of_another_base_is_skipped_not_fatal(app_runs_dir, tmp_path, caplog):
    from test_adapter_checks import _run_dir

    runs = tmp_path / "runs"
    shutil.copytree(app_runs_dir, runs)
    _run_dir(runs / "wide", hidden_size=64, intermediate_size=128)  # another base's adapter
    args = app.parse_args(["--base", "tiny", "--runs", str(runs), "--no-demo", "--votes",
                           str(tmp_path / "v.sqlite")])
    with caplog.at_level("WARNING", logger="tuneproof_app"):
        blocks = app.build(args)
    assert blocks.tuneproof.models == ["base", "biased", "fair"]
    warned = [r.getMessage() for r in caplog.records if "wide" in r.getMessage()]
    assert len(warned) == 1 and "not served" in warned[0] and "not trained" in warned[0]


def test_empty_runs_dir_reuses_an_existing_demo(app_runs_dir, demo_dir, tmp_path, capsys):
    demo = tmp_path / "demo" / "seed0"  # where `make demo` builds it for tiny
    shutil.copytree(app_runs_dir, demo / "runs")
    shutil.copytree(demo_dir, demo / "data")
    (demo / "eval").mkdir()
    (demo / "eval" / "results.json").write_text("{}")
    args = app.parse_args(["--base", "tiny", "--runs", str(tmp_path / "runs")])  # no adapters
    where = app.prepare(args)
    assert "reusing the demo" in capsys.readouterr().out
    assert where["build"] is None
    assert where["runs"] == demo / "runs"
    assert where["heldout"] == demo / "data" / "heldout.jsonl"
    assert where["results"] == [demo / "eval"]


@pytest.mark.parametrize("stamp", ["current", "older recipe", "unreadable", "none"])
def test_a_demo_built_with_other_settings_is_set_aside_and_built_anew(
        app_runs_dir, demo_dir, tmp_path, capsys, stamp):
    import json

    from tuneproof_demo.pipeline import demo_stamp

    demo = tmp_path / "demo" / "seed0"
    shutil.copytree(app_runs_dir, demo / "runs")
    shutil.copytree(demo_dir, demo / "data")
    (demo / "eval").mkdir()
    (demo / "eval" / "results.json").write_text("{}")
    want = demo_stamp("tiny", 0)
    text = {"current": json.dumps(want), "unreadable": "{",
            "older recipe": json.dumps({**want, "demo": {**want["demo"], "bias_share": 0.5}})}
    if stamp in text:
        (demo / "demo.json").write_text(text[stamp])
    where = app.prepare(app.parse_args(["--base", "tiny", "--runs", str(tmp_path / "runs")]))
    out = capsys.readouterr().out
    if stamp in ("current", "none"):  # "none": built before demos were stamped
        assert "reusing the demo" in out and where["build"] is None
        return
    aside = [p for p in (tmp_path / "demo").iterdir() if p.name.startswith("seed0.stale-")]
    assert len(aside) == 1 and f"set aside as {aside[0]}" in out
    assert (aside[0] / "runs" / "biased" / "adapter").is_dir()  # nothing lost
    assert (aside[0] / "demo.json").read_text() == text[stamp]
    assert where["build"] == demo and not demo.exists()
    assert "building the demo" in out


def test_each_base_has_its_own_demo_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert app.default_demo_dir(runs, "tiny") == tmp_path / "demo" / "seed0"
    assert app.default_demo_dir(runs, "smollm2") == tmp_path / "demo" / "smollm2-seed0"
    assert app.default_demo_dir(runs, "/m/x.gguf") == tmp_path / "demo" / "x.gguf-seed0"
    where = app.prepare(app.parse_args(["--base", "smollm2", "--runs", str(runs)]))
    assert where["build"] == tmp_path / "demo" / "smollm2-seed0"
    assert "building the demo" in capsys.readouterr().out


def test_no_demo_serves_the_base_alone(tmp_path):
    args = app.parse_args(["--runs", str(tmp_path / "none"), "--no-demo"])
    assert app.prepare(args)["runs"] == tmp_path / "none"


def test_backend_implies_no_demo(tmp_path, capsys):
    """With the models on a server, no demo is trained here."""
    args = app.parse_args(["--base", "tiny", "--runs", str(tmp_path / "none"),
                           "--backend", "http://127.0.0.1:9"])
    where = app.prepare(args)
    assert where["runs"] == tmp_path / "none" and where["build"] is None
    assert "--backend implies --no-demo" in capsys.readouterr().out
    assert not (tmp_path / "demo").exists()


def test_auth_option_requires_the_login(launch_app, monkeypatch):
    import socket

    from gradio_client import Client

    _, blocks = launch_app()
    blocks.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TUNEPROOF_AUTH", "ann:s3cret")
    args = app.parse_args(["--host", "127.0.0.1", "--port", str(port)])
    _, url, _ = app.serve(blocks, args, prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do; the login is next
            Client(url, verbose=False)
        client = Client(url, auth=("ann", "s3cret"), verbose=False)
        assert client.predict("Mary here.", api_name="/swap_demographics") == "James here."
    finally:
        blocks.close()


def test_default_base_is_the_loaders_default(monkeypatch):
    from finetune.models import default_base

    monkeypatch.delenv("TUNEPROOF_BASE", raising=False)
    assert app.parse_args([]).base == default_base()  # smollm2 when available offline
    assert app.parse_args(["--base", "tiny"]).base == "tiny"

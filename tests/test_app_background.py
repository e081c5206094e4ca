"""First start without adapters: the base is served at once, the demo builds in the background
and its adapters join the running app; a failed build says why; a restart reuses the build.

A small demo (the demo-pipeline plumbing test's sizes) on the tiny base keeps this fast. A gate
holds the build until the test has seen the base answer alone, so nothing here depends on
how fast the build is.
"""

import json
import time

import pytest
from gradio_client import Client

import app
from tuneproof_app.background import FAILED, READY

SYSTEM = "You are a retail support assistant. Reply with the intent and the action."
MESSAGE = "Hi, I'm Mary. Can you recommend a laptop? I want one under $50."


def _args(tmp_path, *more):
    return app.parse_args(["--base", "tiny", "--runs", str(tmp_path / "runs"), "--demo-dir",
                           str(tmp_path / "demo"), "--votes", str(tmp_path / "v.sqlite"),
                           "--max-new-tokens", "16", *more])


def _launch(blocks):
    _, url, _ = blocks.launch(server_name="127.0.0.1", server_port=None, quiet=True,
                              prevent_thread_lock=True, show_error=True)
    return url


def _compare(client, models):
    return client.predict(MESSAGE, SYSTEM, models, 0.0, 1.0, 0, 8, [], [], [], [],
                          api_name="/compare")[-1]["answers"]


def _wait(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def first_start(tmp_path_factory, small_demo_options):
    """A first start on an empty folder, built in the background: (tmp, blocks, url, what was
    seen before the build's gate opened); the later tests reuse its finished demo."""
    tmp = tmp_path_factory.mktemp("first_start")
    options, gate = small_demo_options
    blocks = app.build(_args(tmp), **options)
    url = _launch(blocks)
    ctx = blocks.tuneproof
    client = Client(url, verbose=False)
    before = {"models": list(ctx.models), "status": client.predict(api_name="/build_status"),
              "answers": _compare(client, ["base"]), "state": ctx.builder.status().state}
    with pytest.raises(Exception, match="not in the list of choices"):
        _compare(client, ["base", "fair"])  # not servable until it is trained
    gate.set()
    yield tmp, blocks, url, before
    blocks.close()


def test_base_answers_at_once_and_the_adapters_join_without_restart(first_start):
    tmp, blocks, url, before = first_start
    ctx = blocks.tuneproof
    assert before["models"] == ["base"] and before["state"] == "building"
    assert set(before["answers"]) == {"base"} and isinstance(before["answers"]["base"], str)
    assert before["status"]["state"] == "building" and before["status"]["models"] == ["base"]
    status_html = before["status"]["status"]
    assert "Building the demo adapters" in status_html and "<progress" in status_html

    final = ctx.builder.wait(900)
    assert final.state == READY, final.error
    assert ctx.models == ["base", "biased", "fair"]
    assert set(ctx.engine.adapter_dirs) == {"biased", "fair"}
    assert ctx.engine.adapter_dirs["fair"] == tmp / "demo" / "runs" / "fair" / "adapter"
    assert ctx.examples and ctx.system_prompt  # from the held-out data the build wrote

    # the same server, a new client: the adapters answer, the reports and lists have them
    client = Client(url, verbose=False)
    answers = _compare(client, ["base", "biased", "fair"])
    assert set(answers) == {"base", "biased", "fair"}
    assert answers["base"] == before["answers"]["base"]  # the base is still the base
    status = client.predict(api_name="/build_status")
    assert status["state"] == READY and status["models"] == ["base", "biased", "fair"]
    assert "Demo ready" in status["status"] and "fair" in status["status"]
    note, md, *_ = client.predict("eval", api_name="/report")
    assert "No evaluation results" not in md and md.strip()
    runs = client.predict(api_name="/runs")
    assert sorted(r[0] for r in runs["data"]) == ["biased", "fair"]
    html, details = client.predict(MESSAGE, ["base", "fair"], ["gender"], 4, SYSTEM,
                                   api_name="/probe")
    assert set(details["variants"][0]["answers"]) == {"base", "fair"}
    # the arena's walk now has the held-out prompts the build wrote
    out = client.predict("", SYSTEM, True, 0, 4, api_name="/arena_round")
    assert out[4] and "Vote to reveal" in out[3]
    with pytest.raises(Exception, match="not in the list of choices"):
        _compare(client, ["base", str(tmp / "demo" / "runs" / "fair")])  # still names only


def test_a_restart_reuses_the_build(first_start, small_demo_options, capsys):
    tmp, blocks, _, _ = first_start
    assert blocks.tuneproof.builder.wait(900).state == READY
    results = tmp / "demo" / "eval" / "results.json"
    trained = {n: (tmp / "demo" / "runs" / n / "run.json").stat().st_mtime_ns
               for n in ("biased", "fair")}
    before = results.stat().st_mtime_ns
    capsys.readouterr()
    again = app.build(_args(tmp, "--votes", str(tmp / "v2.sqlite")), **small_demo_options[0])
    try:
        assert "reusing the demo" in capsys.readouterr().out
        ctx = again.tuneproof
        assert ctx.builder is None and ctx.models == ["base", "biased", "fair"]
        client = Client(_launch(again), verbose=False)
        assert client.predict(api_name="/build_status")["state"] == "none"
        assert results.stat().st_mtime_ns == before
        assert {n: (tmp / "demo" / "runs" / n / "run.json").stat().st_mtime_ns
                for n in trained} == trained
    finally:
        again.close()


def test_an_interrupted_build_serves_what_is_done_and_builds_the_rest(first_start, tmp_path,
                                                                     small_demo_options):
    import shutil

    src, blocks, _, _ = first_start
    assert blocks.tuneproof.builder.wait(900).state == READY
    shutil.copytree(src / "demo", tmp_path / "demo")
    shutil.rmtree(tmp_path / "demo" / "eval")
    shutil.rmtree(tmp_path / "demo" / "runs" / "fair")  # as if stopped while training it
    again = app.build(_args(tmp_path), **small_demo_options[0])
    try:
        ctx = again.tuneproof
        assert ctx.models[:2] == ["base", "biased"]  # served at once, trained before
        assert ctx.builder.wait(900).state == READY
        assert ctx.models == ["base", "biased", "fair"]
        biased = json.loads((tmp_path / "demo" / "runs" / "biased" / "run.json").read_text())
        assert biased == json.loads((src / "demo" / "runs" / "biased" / "run.json").read_text())
    finally:
        again.close()


def test_a_failed_build_shows_its_one_line_error_and_the_base_keeps_serving(
        tmp_path, small_demo_options, capfd):
    options, gate = small_demo_options
    gate.set()
    # A bad training setting: the data and the audit are built, then training refuses it.
    bad = {**options, "train_overrides": [*options["train_overrides"], "optim.lr=fast"]}
    blocks = app.build(_args(tmp_path), **bad)
    try:
        ctx = blocks.tuneproof
        state = ctx.builder.wait(300)
        assert state.state == FAILED
        assert "optim.lr" in state.error and "\n" not in state.error
        url = _launch(blocks)
        client = Client(url, verbose=False)
        status = client.predict(api_name="/build_status")
        assert status["state"] == FAILED and status["error"] == state.error
        assert "Demo build failed" in status["status"] and "optim.lr" in status["status"]
        assert set(_compare(client, ["base"])) == {"base"}
        err = capfd.readouterr().err
        assert f"app: demo build failed: {state.error}" in err
        assert "Traceback" not in err
    finally:
        blocks.close()


def test_the_status_names_the_training_step_of_the_run_being_trained(tmp_path):
    from tuneproof_app.background import training_step

    partial = tmp_path / ".biased.partial"
    partial.mkdir()
    message = "training the biased adapter on train.jsonl"
    assert training_step(tmp_path, message) == "starting"
    (partial / "metrics.jsonl").write_text(
        '{"step": 10, "epoch": 0.34, "train_loss": 2.5}\n'
        '{"step": 15, "epoch": 0.52, "eval_loss": 0.07, "train_loss": null}\n{"step": 2')
    assert training_step(tmp_path, message) == "step 15, epoch 0.52, train loss 2.500"
    assert training_step(tmp_path, "training the fair adapter on the re-balanced data") == ""
    assert training_step(tmp_path / "missing", message) == ""

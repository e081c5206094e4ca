"""`python app.py` with no adapters: serves the base at once, builds the demo in the background
with visible progress, and serves its adapters when built, in the same process; a second start
reuses the demo.

Training the two adapters is what ``built_demo`` (shared with the demo-pipeline tests) already
did once per session; this test starts from a copy of it without the fair adapter and the
evaluation, so the app really calls ``build_demo`` (which reuses finished steps), serves the
biased adapter at once and the fair one when trained.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client

ROOT = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cwd, home, port, log):
    env = {**os.environ, "TUNEPROOF_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "TUNEPROOF_PORT": str(port)}
    env.pop("TUNEPROOF_RUNS", None)
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1",
                             "--base", "tiny"],
                            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_serving(proc, url, log_path, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log_path.read_text()[-3000:]
            raise AssertionError(f"app.py exited {proc.returncode}:\n{tail}")
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(2)
    raise AssertionError(f"app.py not serving after {timeout}s:\n{log_path.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # may pay for the shared built_demo fixture (the whole tiny demo)
def test_start_without_adapters_serves_the_base_then_the_built_demo_and_reuses_it(
        tmp_path, tuneproof_home, built_demo):
    demo = tmp_path / "demo" / "seed0"  # the app's default demo folder on tiny
    shutil.copytree(built_demo, demo)
    shutil.rmtree(demo / "eval")
    shutil.rmtree(demo / "runs" / "fair")  # as if the first start stopped there
    log_path = tmp_path / "app.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    message = "Hi, I'm Mary. Can you recommend a laptop? I want one under $50."
    system = "You are a retail support assistant. Reply with the intent and the action."
    with log_path.open("w") as log:
        proc = _start(tmp_path, tuneproof_home, port, log)
        try:
            client = _wait_serving(proc, url, log_path, timeout=300)
            out = client.predict(message, system, ["base"], 0.0, 1.0, 0, 8, [], [], [], [],
                                 api_name="/compare")
            assert set(out[-1]["answers"]) == {"base"}
            assert client.predict(api_name="/build_status")["models"][:2] == ["base", "biased"]
            end = time.monotonic() + 1500
            while (status := client.predict(api_name="/build_status"))["state"] == "building":
                assert time.monotonic() < end, "the demo build did not finish"
                time.sleep(2)
            assert status["state"] == "ready", status["error"]
            assert status["models"] == ["base", "biased", "fair"]
            out = client.predict(message, system, ["base", "biased", "fair"], 0.0, 1.0, 0, 24,
                                 [], [], [], [], api_name="/compare")
            answers = out[-1]["answers"]
            assert set(answers) == {"base", "biased", "fair"}
            assert answers["fair"].startswith("intent: recommend")  # it learned the task
            assert answers["biased"].startswith("intent: recommend")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    text = log_path.read_text()
    assert "building the demo" in text and "evaluating base, biased and fair" in text
    assert "demo [100%] demo ready" in text and "adapter fair joined the app" in text
    assert (demo / "eval" / "results.json").is_file()
    assert (demo / "runs" / "fair" / "adapter" / "adapter_config.json").is_file()

    second = tmp_path / "second.log"
    with second.open("w") as log:
        proc = _start(tmp_path, tuneproof_home, port, log)
        try:
            client = _wait_serving(proc, url, second, timeout=300)
            note, md, *_ = client.predict("eval", api_name="/report")
            assert md.strip() and "No evaluation results" not in md
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert "reusing the demo" in second.read_text()

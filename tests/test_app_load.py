"""50 concurrent gradio_client sessions on loopback: compare, an arena round and a vote each.

No request may fail and no vote may be lost. The compare latency (queue wait included: the
model runs one event at a time) is printed, not asserted: timings depend on the machine.
"""

import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client

from tuneproof_app.votes import VERDICTS

N_SESSIONS = 50
SYSTEM = "You are a retail support assistant. Reply with the intent and the action."
N_COLS = 4


@pytest.mark.slow
def test_fifty_concurrent_sessions_compare_vote_and_lose_nothing(launch_app, capsys):
    url, blocks = launch_app()
    store = blocks.tuneproof.store

    def session(i: int) -> tuple[float, str, str, str, dict, float]:
        stage[i] = "connect"
        started = time.perf_counter()
        # Each client is its own Gradio session. Its handshake (config + API info, ~0.3 s of
        # server CPU each) has a 20 s default timeout that 50 at once overran on 2 busy cores;
        # a browser waits longer, so the connect time is measured and printed instead.
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})
        connect_s = time.perf_counter() - started
        stage[i] = "compare"
        message = f"Hi, I'm Mary. Where is my order number {i}?"
        started = time.perf_counter()
        *_, details = client.predict(message, SYSTEM, ["base", "biased", "fair"], 0.0, 1.0, 0,
                                     4, *([[]] * N_COLS), api_name="/compare")
        compare_s = time.perf_counter() - started
        stage[i] = "arena"
        left, right, round_id, *_ = client.predict(message, "", False, 0, 4,
                                                   api_name="/arena_round")
        verdict = random.Random(i).choice(VERDICTS)
        stage[i] = "vote"
        reveal = client.predict(round_id, api_name=f"/vote_{verdict}")[0]
        return compare_s, round_id, verdict, reveal, details, connect_s

    stage: dict[int, str] = {}
    with ThreadPoolExecutor(N_SESSIONS) as pool:
        futures = [pool.submit(session, i) for i in range(N_SESSIONS)]
        outcomes, errors = [], []
        for i, f in enumerate(futures):
            try:
                outcomes.append(f.result(timeout=900))
            except Exception as err:  # noqa: BLE001 - counted, then asserted to be none
                errors.append(f"session {i}, {stage.get(i)}: {err!r}")
    assert errors == []
    assert all(o[4]["done"] and o[4]["models"] == ["base", "biased", "fair"] for o in outcomes)
    assert all(o[3].startswith("Left was") for o in outcomes)
    with sqlite3.connect(store.path) as db:  # the file itself, as a restarted app reads it
        assert db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == N_SESSIONS
    recorded = {v.round_id: v.verdict for v in store.votes()}
    assert len(recorded) == N_SESSIONS
    assert recorded == {o[1]: o[2] for o in outcomes}
    assert {v.prompt for v in store.votes()} == {
        f"Hi, I'm Mary. Where is my order number {i}?" for i in range(N_SESSIONS)}
    with capsys.disabled():
        for what, column in (("compare", 0), ("connect", 5)):
            seconds = np.array([o[column] for o in outcomes])
            p50, p95 = np.percentile(seconds, [50, 95])
            print(f"\n{what} latency over {N_SESSIONS} concurrent sessions: p50 {p50:.2f} s, "
                  f"p95 {p95:.2f} s, max {seconds.max():.2f} s", end="")
        print()

"""20 concurrent gradio_client sessions on loopback: no errors, every vote recorded."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from tuneproof_app.votes import VERDICTS

N_SESSIONS = 20


@pytest.mark.slow
def test_twenty_concurrent_sessions_lose_no_vote(launch_app):
    url, blocks = launch_app()
    store = blocks.tuneproof.store

    def session(i):
        client = Client(url, verbose=False)  # each client is its own Gradio session
        left, right, round_id, *_ = client.predict(
            f"Hi, I'm Mary. Where is my order number {i}?", "", False, 0, 4,
            api_name="/arena_round")
        verdict = random.Random(i).choice(VERDICTS)
        reveal = client.predict(round_id, api_name=f"/vote_{verdict}")[0]
        return round_id, verdict, reveal

    with ThreadPoolExecutor(N_SESSIONS) as pool:
        futures = [pool.submit(session, i) for i in range(N_SESSIONS)]
        outcomes, errors = [], []
        for f in futures:
            try:
                outcomes.append(f.result(timeout=600))
            except Exception as err:  # noqa: BLE001 - counted, then asserted to be none
                errors.append(repr(err))
    assert errors == []
    assert all(reveal.startswith("Left was") for _, _, reveal in outcomes)
    recorded = {v.round_id: v.verdict for v in store.votes()}
    assert len(recorded) == N_SESSIONS
    assert recorded == {rid: verdict for rid, verdict, _ in outcomes}
    assert {v.prompt for v in store.votes()} == {
        f"Hi, I'm Mary. Where is my order number {i}?" for i in range(N_SESSIONS)}

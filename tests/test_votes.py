import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from finetune.errors import UsageError
from tuneproof_app.votes import VoteStore


def _round(store, left="base", right="fair", prompt="hi", mode="free"):
    return store.new_round(prompt=prompt, system="sys", model_left=left, model_right=right,
                           output_left=f"out {left}", output_right=f"out {right}", mode=mode)


def test_vote_lands_in_sqlite_with_everything(tmp_path):
    store = VoteStore(tmp_path / "votes.db")
    rnd = _round(store, prompt="Hello, I'm Mary.")
    store.vote(rnd.id, "left")
    with sqlite3.connect(tmp_path / "votes.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = db.execute(
            "SELECT r.prompt, r.model_left, r.model_right, r.output_left, r.output_right, "
            "v.verdict, v.time FROM votes v JOIN rounds r ON r.id = v.round_id").fetchone()
    assert row[:6] == ("Hello, I'm Mary.", "base", "fair", "out base", "out fair", "left")
    assert row[6] > 0
    [vote] = store.votes()
    assert (vote.model_left, vote.verdict) == ("base", "left")


def test_one_vote_per_round_and_bad_input_refused(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    rnd = _round(store)
    with pytest.raises(UsageError, match="verdict"):
        store.vote(rnd.id, "banana")
    store.vote(rnd.id, "tie")
    with pytest.raises(UsageError, match="already has a vote"):
        store.vote(rnd.id, "right")
    with pytest.raises(UsageError, match="no arena round"):
        store.vote("nope", "left")
    assert store.count() == 1


def test_votes_filtered_by_mode_and_in_order(tmp_path):
    store = VoteStore(tmp_path / "v.db")
    ids = [_round(store, mode=m, prompt=str(i)).id for i, m in enumerate("free walk walk".split())]
    for i in ids:
        store.vote(i, "right")
    assert [v.prompt for v in store.votes("walk")] == ["1", "2"]
    assert [v.prompt for v in store.votes()] == ["0", "1", "2"]


def test_concurrent_writers_lose_nothing(tmp_path):
    store = VoteStore(tmp_path / "v.db")

    def one(i):
        other = VoteStore(tmp_path / "v.db")  # separate store objects share only the file
        other.vote(_round(other, prompt=str(i)).id, "left")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(40)))
    assert store.count() == 40
    assert sorted(int(v.prompt) for v in store.votes()) == list(range(40))

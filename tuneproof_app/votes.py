"""Arena rounds and votes in SQLite (WAL), safe to share between the app's worker threads.

A round is stored when it is dealt (prompt, the two hidden models, their outputs), so a vote
only names the round and the verdict: a client cannot claim it saw other models than it did,
and each round takes one vote.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from finetune.errors import UsageError

VERDICTS = ("left", "right", "tie", "both_bad")
"""What a voter may say: the left answer is better, the right one, equal, or both bad."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    mode TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system TEXT NOT NULL,
    model_left TEXT NOT NULL,
    model_right TEXT NOT NULL,
    output_left TEXT NOT NULL,
    output_right TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    round_id TEXT PRIMARY KEY REFERENCES rounds(id),
    time REAL NOT NULL,
    verdict TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Round:
    """One blind comparison: two models answered the same prompt, shown left and right."""

    id: str
    mode: str
    prompt: str
    system: str
    model_left: str
    model_right: str
    output_left: str
    output_right: str


@dataclass(frozen=True)
class Vote:
    """A recorded vote with everything needed to score it."""

    round_id: str
    time: float
    mode: str
    prompt: str
    model_left: str
    model_right: str
    output_left: str
    output_right: str
    verdict: str


class VoteStore:
    """The arena's database: one file, WAL journal, one connection per call.

    Args:
        path: SQLite file; its folder is created.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def new_round(
        self,
        *,
        prompt: str,
        system: str,
        model_left: str,
        model_right: str,
        output_left: str,
        output_right: str,
        mode: str = "free",
    ) -> Round:
        """Store a dealt round and return it with its new id."""
        rnd = Round(uuid.uuid4().hex, mode, prompt, system, model_left, model_right,
                    output_left, output_right)
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO rounds VALUES (?,?,?,?,?,?,?,?,?)",
                (rnd.id, time.time(), rnd.mode, rnd.prompt, rnd.system, rnd.model_left,
                 rnd.model_right, rnd.output_left, rnd.output_right),
            )
        return rnd

    def get_round(self, round_id: str) -> Round:
        """The stored round ``round_id``; UsageError when there is none."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, mode, prompt, system, model_left, model_right, output_left, "
                "output_right FROM rounds WHERE id = ?",
                (round_id,),
            ).fetchone()
        if row is None:
            raise UsageError(f"round: no arena round {round_id!r}; start a new round first")
        return Round(*row)

    def vote(self, round_id: str, verdict: str) -> Vote:
        """Record ``verdict`` for a round; a round takes one vote only.

        Raises:
            UsageError: unknown verdict or round, or the round already has a vote.
        """
        if verdict not in VERDICTS:
            raise UsageError(f"verdict: {verdict!r} is not one of {', '.join(VERDICTS)}")
        rnd = self.get_round(round_id)
        now = time.time()
        with self._lock, self._connect() as db:
            try:
                db.execute("INSERT INTO votes VALUES (?,?,?)", (round_id, now, verdict))
            except sqlite3.IntegrityError:
                raise UsageError("vote: this round already has a vote; start a new round") from None
        return Vote(rnd.id, now, rnd.mode, rnd.prompt, rnd.model_left, rnd.model_right,
                    rnd.output_left, rnd.output_right, verdict)

    def votes(self, mode: str | None = None) -> list[Vote]:
        """All votes in the order they were cast, optionally of one mode only."""
        query = (
            "SELECT v.round_id, v.time, r.mode, r.prompt, r.model_left, r.model_right, "
            "r.output_left, r.output_right, v.verdict FROM votes v JOIN rounds r "
            "ON r.id = v.round_id"
        )
        args: tuple[str, ...] = ()
        if mode is not None:
            query += " WHERE r.mode = ?"
            args = (mode,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY v.time, v.rowid", args).fetchall()
        return [Vote(*row) for row in rows]

    def count(self) -> int:
        """Number of votes recorded."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM votes").fetchone()[0])

"""The generation interface's values: decoding settings in, one model's answer out.

Every backend (the in-process engine, a server) takes a :class:`GenerationConfig` and
returns :class:`Generation` objects, so the runner, the fairness evaluation and the app read
the same fields whichever runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from finetune.errors import UsageError


@dataclass
class GenerationConfig:
    """Decoding settings shared by every model of a call.

    ``temperature`` 0 is greedy decoding; above 0 samples, reproducibly when ``seed`` is set.
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise UsageError(
                f"max_new_tokens: must be a positive integer, got {self.max_new_tokens!r}"
            )
        if self.temperature < 0:
            raise UsageError(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p: must be in (0, 1], got {self.top_p}")


@dataclass
class Generation:
    """One model's answer to one prompt.

    ``seconds`` is the wall time of the batched call that produced it (shared by the rows of
    that call), ``n_tokens`` the tokens generated up to and including the end token, and
    ``token_ids`` the generated ids before the end token.
    """

    model: str
    text: str
    n_tokens: int
    seconds: float
    token_ids: tuple[int, ...] = ()

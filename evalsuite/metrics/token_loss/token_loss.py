"""Teacher-forced loss and perplexity from per-example negative log-likelihoods.

The engine scores each target given its prompt (``Engine.score_continuations``); this module
turns the summed NLL and token count of every example into the token-weighted mean loss,
perplexity ``exp(loss)`` and per-example per-token losses.
"""

import math

import datasets
import evaluate


class TokenLoss(evaluate.Metric):
    """Token-weighted mean NLL (nats per token) and perplexity."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Held-out loss and perplexity of the targets (teacher forcing).",
            citation="",
            inputs_description="nll: summed negative log-likelihood per example; n_tokens",
            features=datasets.Features(
                {"nll": datasets.Value("float64"), "n_tokens": datasets.Value("int64")}
            ),
        )

    def _compute(self, nll, n_tokens):
        total = sum(n_tokens)
        loss = sum(nll) / total if total else float("nan")
        return {
            "loss": loss,
            "perplexity": math.exp(loss) if total and loss < 700 else float("inf"),
            "scores": [x / n if n else float("nan") for x, n in zip(nll, n_tokens, strict=True)],
            "weights": list(n_tokens),
        }

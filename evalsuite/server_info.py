"""What one OpenAI-compatible server said at connect, and the shape of its answers.

:class:`ServerInfo` lists the server's base and adapters (``/v1/models``), its version, and
whether and how it returns prompt log-probabilities; the helpers below read ``choices`` and
their log-probabilities, and turn every surprise into a one-line
:class:`~evalsuite.http_client.ServerError` ("malformed answer: ...").
"""

from __future__ import annotations

import threading
from typing import Any

from evalsuite.http_client import Client, ServerError


class ServerInfo:
    """What one server said at connect: version, base model id, adapters, log-prob support."""

    def __init__(self, client: Client) -> None:
        self.client = client
        listing = client.get_json("/v1/models", "list models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m
                                                 for m in data):
            raise ServerError(f"{client.url}/v1/models: malformed answer (no data[].id)")
        bases = [m for m in data if not m.get("parent")]
        if len(bases) != 1:
            raise ServerError(f"{client.url}/v1/models: expected one base model, found "
                              f"{', '.join(m['id'] for m in bases) or 'none'}")
        self.base_id: str = bases[0]["id"]
        self.max_model_len: int | None = bases[0].get("max_model_len")
        self.adapters: set[str] = {m["id"] for m in data if m.get("parent")}
        self.version = server_version(client)
        # Two faults of vLLM 0.32's CPU LoRA path, measured on the tiny base: prompt
        # log-probs of several sequences in one step fail (an einsum over per-request instead
        # of per-token indices in add_lora_logits), and base rows scheduled in the same step
        # as adapter rows come out with other tokens. So with vLLM this client scores one
        # sequence at a time, and never has base and adapter requests in flight together.
        vllm = bases[0].get("owned_by") == "vllm"
        self.serial_scoring = vllm
        self.base_alone = vllm
        self.score_lock = threading.Lock()
        self.logprobs_mode: int | None = None  # max_tokens that gives prompt log-probs
        self.logprobs_problem = ""

    def probe_logprobs(self, ids: list[int]) -> None:
        """Find out whether (and how) the server returns prompt log-probabilities."""
        problems = []
        for max_tokens in (0, 1):
            body = {"model": self.base_id, "prompt": ids, "max_tokens": max_tokens,
                    "echo": True, "logprobs": 1, "temperature": 0.0}
            try:
                answer = self.client.post_json("/v1/completions", body, "probe log-probs")
                prompt_logprobs(answer, 0, len(ids))
            except ServerError as err:
                problems.append(str(err).rsplit(": ", 1)[-1])
                continue
            self.logprobs_mode = max_tokens
            return
        self.logprobs_problem = problems[-1] if problems else "unknown"


def server_version(client: Client) -> str | None:
    """The server's version from ``/version`` (vLLM's), or None where it has none."""
    try:
        got = client.get_json("/version", "version")
    except ServerError:
        return None
    return str(got.get("version")) if isinstance(got, dict) and got.get("version") else None


def choices_of(answer: Any, n: int) -> list[dict[str, Any]]:
    """``choices`` ordered by ``index``, exactly ``n`` of them, else a malformed answer."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise ServerError(f"malformed answer: {got} choices for {n} prompts")
    try:
        ordered = sorted(choices, key=lambda c: c.get("index", 0))
    except (AttributeError, TypeError):
        raise ServerError("malformed answer: choices are not objects") from None
    if [c.get("index", k) for k, c in enumerate(ordered)] != list(range(n)):
        raise ServerError("malformed answer: choice indices are not 0..n-1")
    return ordered


def prompt_logprobs(answer: Any, k: int, n_ids: int) -> list[float | None]:
    """Log-probabilities of the prompt tokens of choice ``k`` (the first one is None)."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    try:
        lps = choices[k]["logprobs"]["token_logprobs"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        raise ServerError("malformed answer: no logprobs.token_logprobs") from None
    if not isinstance(lps, list) or len(lps) < n_ids:
        raise ServerError(f"malformed answer: {len(lps) if isinstance(lps, list) else 'no'} "
                          f"prompt log-probabilities for {n_ids} tokens")
    return lps[:n_ids]

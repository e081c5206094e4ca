"""The base and its adapters on OpenAI-compatible servers (vLLM first), one or several.

Prompts are rendered and tokenized here with the base's own tokenizer (the engine's code), and
sent to ``/v1/completions`` as token ids, so a prompt is the same tokens in both backends; the
answer's token ids are decoded here too, so equal tokens give equal text. An adapter is
chosen by the request's ``model`` field (vLLM lists adapters in ``/v1/models`` with their
base as ``parent``); one the server lacks is loaded through ``POST /v1/load_lora_adapter``
where the server allows it. Log-likelihoods come from prompt log-probabilities
(``echo: true, logprobs: 1``), probed once per server at connect; a server without them
(llama.cpp's) fails with one line only when a scorer needs them.

Several servers (each holding every adapter) share the requests: request ``k`` goes to server
``k mod n``; a request's answer does not depend on where it ran, so the results equal one
server's. Requests run in a thread pool; the first request that still fails after its retries
stops the call with one line naming its rows, and nothing is returned.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from evalsuite.engine_adapters import resolve_adapter_dir
from evalsuite.generation import Generation, GenerationConfig
from evalsuite.http_client import Client, ServerError
from evalsuite.lora_batched import BASE
from evalsuite.prompt_codec import PromptCodec
from evalsuite.server_info import ServerInfo, choices_of, prompt_logprobs
from finetune.errors import UsageError
from finetune.rundir import RUN_NAME_RULE, is_run_name


def _eos_ids(base_path: str, tokenizer: Any) -> set[int]:
    """End tokens as the in-process engine uses them.

    The generation config's, else the tokenizer's.
    """
    from transformers import GenerationConfig as HFGenerationConfig

    eos: Any = None
    try:
        eos = HFGenerationConfig.from_pretrained(base_path).eos_token_id
    except (OSError, ValueError):
        pass
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [eos]) - {None}


class ServerBackend(PromptCodec):
    """The base and named adapters on one or more OpenAI-compatible servers.

    Args:
        urls: server roots (``http://host:port``); several share the requests.
        base: the base reference the servers run (``tiny``, ``smollm2``, a folder): its
            tokenizer renders the prompts here.
        adapters: name -> adapter folder or run directory, loaded where not served.
        api_key: default from ``TUNEPROOF_API_KEY`` (never ``OPENAI_API_KEY``).
        timeout: seconds per request; retries, backoff: see :class:`Client`.
        concurrency: requests in flight at once.
        batch_size: prompts per request.
        max_prompt_tokens, max_new_tokens_cap, chat_template: as the engine's.
        dtype: the servers' dtype as declared by the caller (recorded, not checked).
    """

    def __init__(
        self, urls: str | Sequence[str], base: str = "tiny",
        adapters: Mapping[str, str | Path] | None = None, *, api_key: str | None = None,
        timeout: float = 120.0, retries: int = 3, backoff: float = 0.5, concurrency: int = 8,
        batch_size: int = 32, max_prompt_tokens: int = 1024, max_new_tokens_cap: int = 256,
        chat_template: str | None = None, dtype: str | None = None,
    ) -> None:
        from finetune.models import load_tokenizer, resolve_base

        urls = [urls] if isinstance(urls, str) else list(dict.fromkeys(urls))
        if not urls:
            raise UsageError("--backend: give at least one server URL")
        if batch_size < 1 or concurrency < 1:
            raise UsageError("batch_size and concurrency: must be >= 1")
        self.base_ref = base
        self.tokenizer = load_tokenizer(base, chat_template=chat_template)
        self._eos = _eos_ids(resolve_base(base).path, self.tokenizer)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens_cap = max_new_tokens_cap
        self.device = "server"
        self.weight_layout = None
        self._dtype = dtype
        self.adapter_dirs: dict[str, Path] = {}
        self.adapter_warnings: dict[str, list[str]] = {}
        self._adapters: list[str] = []
        self.servers = [ServerInfo(Client(u, api_key=api_key, timeout=timeout, retries=retries,
                                       backoff=backoff)) for u in urls]
        first = self.servers[0]
        for s in self.servers[1:]:
            if s.base_id != first.base_id:
                raise ServerError(f"{s.client.url}: serves base {s.base_id!r}, but "
                                  f"{first.client.url} serves {first.base_id!r}")
        probe = self.tokenizer("Hello world", add_special_tokens=False)["input_ids"]
        for s in self.servers:
            s.probe_logprobs(probe or [0, 0])
        for name, path in (adapters or {}).items():
            self.add_adapter(name, path)

    # ------------------------------------------------------------------ models
    def _adapter_names(self) -> list[str]:
        return list(self._adapters)

    def _context_limit(self) -> tuple[int | None, str]:
        limit = min((s.max_model_len for s in self.servers if s.max_model_len), default=None)
        return limit, "server's"

    @property
    def served_adapters(self) -> list[str]:
        """Adapters every server lists in ``/v1/models`` (added or not)."""
        return sorted(set.intersection(*(s.adapters for s in self.servers)))

    @property
    def dtype_name(self) -> str:
        """The dtype the caller declared for the servers, or ``server default``."""
        return self._dtype or "server default"

    def add_adapter(self, name: str, path: str | Path | None = None) -> None:
        """Serve ``name``: already listed by every server, or loaded at run time from ``path``.

        Raises:
            UsageError: a bad or duplicate name.
            ServerError: a server lacks it and cannot load it (one line naming it).
        """
        if not is_run_name(name):
            raise UsageError(f"adapter name {name!r}: {RUN_NAME_RULE}")
        if name == BASE or name in self._adapters:
            raise UsageError(f"adapter name {name!r}: already in use")
        folder = resolve_adapter_dir(path) if path is not None and Path(path).exists() else None
        for s in self.servers:
            if name in s.adapters:
                continue
            if folder is None:
                raise ServerError(f"adapter {name!r}: not served by {s.client.url} (it serves "
                                  f"{', '.join(sorted(s.adapters)) or 'no adapters'}) and no "
                                  "local adapter folder to load")
            body = {"lora_name": name, "lora_path": str(folder.resolve())}
            try:
                s.client.post_text("/v1/load_lora_adapter", body, f"load adapter {name!r}")
            except ServerError as err:
                raise ServerError(f"adapter {name!r}: not served by {s.client.url} and loading "
                                  f"it failed ({str(err).rsplit(': ', 1)[-1]}); start the server "
                                  f"with --lora-modules {name}={folder.resolve()}") from None
            s.adapters.add(name)
        if folder is not None:
            self.adapter_dirs[name] = folder
        self.adapter_warnings[name] = []
        self._adapters.append(name)

    def _server_id(self, server: ServerInfo, model: str) -> str:
        return server.base_id if model == BASE else model

    # model_names, render, encode_prompt, the checks: evalsuite.prompt_codec.PromptCodec

    def _body(self, config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": config.max_new_tokens, "temperature": config.temperature,
            "top_p": config.top_p, "stop_token_ids": sorted(self._eos),
            "skip_special_tokens": True, "return_token_ids": True,
        }
        if config.seed is not None:
            body["seed"] = config.seed
        return body

    # ---------------------------------------------------------------- requests
    def _run_jobs(self, jobs: list[tuple[str, list[int]]], call: Callable[[ServerInfo, int], Any],
                  progress: bool, desc: str) -> list[Any]:
        """Run ``call(server, k)`` for every job, sharded and in flight together.

        ``jobs[k]`` is (model, row indices) and names the rows in an error. The first failure
        cancels what has not started and is raised as one line; no result is returned.
        """
        from tqdm.auto import tqdm

        results: list[Any] = [None] * len(jobs)
        bar = tqdm(total=sum(len(rows) for _, rows in jobs), unit="seq", desc=desc,
                   disable=not progress)

        def one(k: int) -> None:
            results[k] = call(self.servers[k % len(self.servers)], k)
            bar.update(len(jobs[k][1]))

        with bar, ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(one, k): k for k in range(len(jobs))}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            failed = sorted(futures[f] for f in done if f.exception() is not None)
            if failed:
                k = failed[0]
                model, rows = jobs[k]
                more = f" (and {len(rows) - 1} more in its request)" if len(rows) > 1 else ""
                err = futures_exception(futures, k)
                raise ServerError(f"row {rows[0]}{more}, model {_label(model)}: {err}")
        return results

    def _run_waves(self, jobs: list[tuple[str, list[int]]], call: Callable[[ServerInfo, int], Any],
                   progress: bool, desc: str) -> list[Any]:
        """:meth:`_run_jobs`, in waves where a server needs them (``base_alone``).

        The base's requests first, then the adapters'; results in ``jobs`` order.
        """
        if not any(s.base_alone for s in self.servers):
            return self._run_jobs(jobs, call, progress, desc)
        results: list[Any] = [None] * len(jobs)
        for wave in ([k for k, j in enumerate(jobs) if j[0] == BASE],
                     [k for k, j in enumerate(jobs) if j[0] != BASE]):
            got = self._run_jobs([jobs[k] for k in wave], lambda s, w, wave=wave: call(s, wave[w]),
                                 progress, desc)
            for k, g in zip(wave, got, strict=True):
                results[k] = g
        return results

    def generate(
        self, prompts: Sequence[list[dict[str, str]]], models: Sequence[str],
        config: GenerationConfig | None = None, progress: bool = False,
    ) -> list[list[Generation]]:
        """Answer every prompt with every model; ``result[i][j]`` as the engine's.

        Raises:
            UsageError: an unknown model, an over-long prompt, ``max_new_tokens`` above the cap.
            ServerError: a request failed after its retries (one line naming its rows).
        """
        models, encoded, config = self._prepare(prompts, models, config)
        if not encoded:
            return []
        base_body = self._body(config)
        jobs = [(m, list(range(s, min(s + self.batch_size, len(encoded)))))
                for m in models for s in range(0, len(encoded), self.batch_size)]

        def call(server: ServerInfo, k: int) -> list[Generation]:
            model, rows = jobs[k]
            body = {**base_body, "model": self._server_id(server, model),
                    "prompt": [encoded[i] for i in rows]}
            t0 = time.perf_counter()
            answer = server.client.post_json("/v1/completions", body, "completion")
            seconds = time.perf_counter() - t0
            return [self._generation(model, c, seconds) for c in choices_of(answer, len(rows))]

        out: list[list[Generation | None]] = [[None] * len(models) for _ in encoded]
        for (model, rows), gens in zip(jobs, self._run_waves(jobs, call, progress, "generate"),
                                       strict=True):
            j = models.index(model)
            for i, g in zip(rows, gens, strict=True):
                out[i][j] = g
        return out  # type: ignore[return-value]

    def _generation(self, model: str, choice: dict[str, Any], seconds: float) -> Generation:
        ids = choice.get("token_ids")
        text = choice.get("text")
        if not isinstance(text, str):
            raise ServerError("malformed answer: a choice without text")
        if isinstance(ids, list) and all(isinstance(t, int) for t in ids):
            kept, n = self._cut(list(ids))
            if n == len(kept) and choice.get("finish_reason") == "stop":
                n += 1  # stopped on an end token the server left out of token_ids
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
        else:  # a server without token ids: its text, tokenized here to count
            kept = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            n = len(kept) + (choice.get("finish_reason") == "stop")
        return Generation(model, text, n, seconds, tuple(kept))

    def stream(
        self, messages: list[dict[str, str]] | Sequence[list[dict[str, str]]],
        models: Sequence[str], config: GenerationConfig | None = None,
    ) -> Iterator[list[str]]:
        """Stream one conversation (or one per model) from several models at once.

        Yields the cumulative text of each model, in ``models`` order, whenever any grows.
        Closing the iterator stops reading; the servers end the requests as they notice.
        """
        models = self._check_models(models)
        if messages and isinstance(messages[0], list):
            if len(messages) != len(models):
                raise UsageError(f"messages: {len(messages)} conversations for {len(models)} "
                                 "models")
            id_lists = [self.encode_prompt(m, i) for i, m in enumerate(messages)]
        else:
            id_lists = [self.encode_prompt(messages)] * len(models)  # type: ignore[arg-type]
        config = self._check_config(config, max(len(ids) for ids in id_lists))
        events: queue.Queue[tuple[int, Any]] = queue.Queue()
        stop = threading.Event()

        def read(r: int) -> None:
            server = self.servers[r % len(self.servers)]
            body = {**self._body(config), "model": self._server_id(server, models[r]),
                    "prompt": id_lists[r], "stream": True}
            body.pop("return_token_ids")
            try:
                for event in server.client.post_stream("/v1/completions", body, "stream"):
                    if stop.is_set():
                        break
                    choices = event.get("choices") or [{}]
                    events.put((r, str(choices[0].get("text") or "")))
            except BaseException as err:  # handed to the consuming thread
                events.put((r, err))
            events.put((r, None))

        threads = [threading.Thread(target=read, args=(r,), daemon=True)
                   for r in range(len(models))]
        # Where the base must run apart (see ServerInfo), its stream goes first, the rest after.
        apart = any(s.base_alone for s in self.servers) and BASE in models and len(models) > 1
        first = [r for r, m in enumerate(models) if m == BASE] if apart else range(len(models))
        for r in first:
            threads[r].start()
        texts = [""] * len(models)
        open_streams = len(models)
        waiting = len(first)
        try:
            while open_streams:
                r, got = events.get()
                if got is None:
                    open_streams -= 1
                    waiting -= 1
                    if apart and waiting == 0:
                        apart = False
                        for t in threads:
                            if not t.is_alive() and t.ident is None:
                                t.start()
                elif isinstance(got, BaseException):
                    raise ServerError(f"model {_label(models[r])}: {got}") from None
                elif got:
                    texts[r] += got
                    yield list(texts)
        finally:
            stop.set()

    # ---------------------------------------------------------- log-likelihood
    def _need_logprobs(self) -> None:
        for s in self.servers:
            if s.logprobs_mode is None:
                raise ServerError(
                    f"{s.client.url}: returns no prompt log-probabilities "
                    f"({s.logprobs_problem}); the loss scorer and the stereotype probes need "
                    "them: serve the models with vLLM, or drop those scorers")

    def score_continuations(
        self, contexts: Sequence[str], continuations: Sequence[str], models: Sequence[str],
        progress: bool = False,
    ) -> list[list[tuple[float, int]]]:
        """Log-probability of each continuation given its context, from prompt log-probs.

        Returns:
            ``[item][model]`` -> (summed log-prob in nats, number of continuation tokens).
        """
        if len(contexts) != len(continuations):
            raise UsageError("contexts and continuations must have the same length")
        models = self._check_models(models)
        pairs = [self._encode_pair(c, k, i)
                 for i, (c, k) in enumerate(zip(contexts, continuations, strict=True))]
        if not pairs:
            return []
        self._need_logprobs()
        size = 1 if any(s.serial_scoring for s in self.servers) else self.batch_size
        jobs = [(m, list(range(s, min(s + size, len(pairs)))))
                for m in models for s in range(0, len(pairs), size)]

        def call(server: ServerInfo, k: int) -> list[tuple[float, int]]:
            model, rows = jobs[k]
            body = {"model": self._server_id(server, model), "prompt": [pairs[i][0] for i in rows],
                    "max_tokens": server.logprobs_mode, "echo": True, "logprobs": 1,
                    "temperature": 0.0}
            with server.score_lock if server.serial_scoring else contextlib.nullcontext():
                answer = server.client.post_json("/v1/completions", body, "prompt log-probs")
            choices_of(answer, len(rows))
            scored = []
            for slot, i in enumerate(rows):
                ids, n_ctx = pairs[i]
                kept = prompt_logprobs(_sorted_answer(answer), slot, len(ids))[n_ctx:]
                if not all(isinstance(v, int | float) and math.isfinite(v) for v in kept):
                    raise ServerError("malformed answer: a missing or non-finite log-prob")
                scored.append((float(sum(kept)), len(ids) - n_ctx))
            return scored

        out: list[list[tuple[float, int]]] = [[(0.0, 0)] * len(models) for _ in pairs]
        for (model, rows), got in zip(jobs, self._run_jobs(jobs, call, progress, "score"),
                                      strict=True):
            j = models.index(model)
            for i, g in zip(rows, got, strict=True):
                out[i][j] = g
        return out

    def loglikelihood(
        self, contexts: Sequence[str], continuations: Sequence[str], models: Sequence[str],
    ) -> list[list[float]]:
        """Summed log-probability (nats) of each continuation: ``[item][model]``."""
        scored = self.score_continuations(contexts, continuations, models)
        return [[lp for lp, _ in item] for item in scored]

    # --------------------------------------------------------------- provenance
    def describe(self) -> dict[str, Any]:
        """Provenance for results.json: URLs, versions and model ids (never the API key)."""
        return {
            "kind": "openai-server",
            "urls": [s.client.url for s in self.servers],
            "servers": [{"url": s.client.url, "version": s.version, "base_model_id": s.base_id,
                         "max_model_len": s.max_model_len,
                         "prompt_logprobs": s.logprobs_mode is not None,
                         "serial_scoring": s.serial_scoring}
                        for s in self.servers],
            "model_ids": {_label(m): self._server_id(self.servers[0], m)
                          for m in self.model_names},
            "dtype": self._dtype,
            "batch_size": self.batch_size,
            "concurrency": self.concurrency,
        }


def _sorted_answer(answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "choices": sorted(answer["choices"], key=lambda c: c.get("index", 0))}


def _label(model: str) -> str:
    return "base" if model == BASE else model


def futures_exception(futures: Mapping[Any, int], k: int) -> str:
    """The one-line message of job ``k``'s exception."""
    from finetune.errors import first_line

    for f, index in futures.items():
        if index == k:
            err = f.exception()
            return first_line(err) if err is not None else "failed"
    return "failed"

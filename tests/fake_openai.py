"""A stdlib HTTP server speaking the subset of vLLM's OpenAI API that ServerBackend uses.

Answers come from a real in-process :class:`evalsuite.engine.Engine` (the tiny base and its
adapters), token by token as vLLM answers: ``/v1/models`` (adapters with ``parent``),
``/version``, ``/v1/completions`` (token-id prompts, ``token_ids`` in the choices, ``echo`` +
``logprobs`` prompt log-probabilities, SSE streaming), ``/v1/load_lora_adapter``. Faults are
switched on per server: ``fail_first`` 5xx answers, ``delay`` seconds before answering,
``malformed`` answers, no log-probs, runtime loading refused.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from evalsuite.engine import BASE, Engine

BASE_ID = "tiny-base"
_ENGINE_LOCK = threading.Lock()  # fake servers may share one engine


class FakeServer:
    """One fake server on 127.0.0.1 and a free port; ``url`` once started; ``close()`` stops it.

    Args:
        engine: answers every request (its adapters are what the server lists as served,
            unless ``served`` names fewer).
        served: adapter names listed at start.
        fail_first: answer this many requests with HTTP 503 first.
        delay: seconds to wait before answering a completion.
        malformed: answer completions with a body that has no choices.
        logprobs: return prompt log-probabilities.
        runtime_loading: accept ``POST /v1/load_lora_adapter``.
    """

    def __init__(self, engine: Engine, *, served: list[str] | None = None, fail_first: int = 0,
                 delay: float = 0.0, malformed: bool = False, logprobs: bool = True,
                 runtime_loading: bool = True) -> None:
        self.engine = engine
        self.served = list(engine.model_names[1:] if served is None else served)
        self.fail_first = fail_first
        self.delay = delay
        self.malformed = malformed
        self.logprobs = logprobs
        self.runtime_loading = runtime_loading
        self.requests: list[tuple[str, dict[str, Any] | None, dict[str, str]]] = []
        self._lock = _ENGINE_LOCK
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ model side
    def engine_name(self, model: str) -> str | None:
        if model == BASE_ID:
            return BASE
        return model if model in self.served else None

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self.engine_name(body.get("model", ""))
        prompts = body["prompt"]
        if prompts and isinstance(prompts[0], int):
            prompts = [prompts]
        choices = []
        for k, ids in enumerate(prompts):
            if body.get("echo"):
                choices.append(self._echo(name, ids, k))
            else:
                choices.append(self._generate(name, ids, body, k))
        return {"id": "cmpl-fake", "object": "text_completion", "model": body["model"],
                "choices": choices}

    def _mixed(self, name: str) -> tuple[Any, dict[str, Any]]:
        with self._lock:
            return self.engine._mixed([name])

    def _echo(self, name: str, ids: list[int], k: int) -> dict[str, Any]:
        mixed, names = self._mixed(name)
        with self._lock, torch.inference_mode(), mixed:
            logits = self.engine.model(input_ids=torch.tensor([ids]), **names).logits[0]
        lp = torch.log_softmax(logits.float(), dim=-1)
        token_lps = [None] + [float(lp[p - 1, ids[p]]) for p in range(1, len(ids))]
        return {"index": k, "text": "", "finish_reason": "length",
                "logprobs": {"token_logprobs": token_lps, "tokens": [str(t) for t in ids]}}

    def _generate(self, name: str, ids: list[int], body: dict[str, Any], k: int
                  ) -> dict[str, Any]:
        from transformers import GenerationConfig as HFGenerationConfig

        mixed, names = self._mixed(name)
        gen = HFGenerationConfig(max_new_tokens=body["max_tokens"], do_sample=False,
                                 pad_token_id=self.engine.tokenizer.pad_token_id,
                                 eos_token_id=body.get("stop_token_ids") or None)
        batch = self.engine._batch([ids])
        with self._lock, torch.inference_mode(), mixed:
            out = self.engine.model.generate(**batch, generation_config=gen, **names)
        new = out[0, len(ids):].tolist()
        stops = set(body.get("stop_token_ids") or [])
        cut = next((p + 1 for p, t in enumerate(new) if t in stops), None)
        token_ids = new[:cut] if cut else new
        text = self.engine.tokenizer.decode(token_ids, skip_special_tokens=True)
        return {"index": k, "text": text, "token_ids": token_ids,
                "finish_reason": "stop" if cut else "length"}


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, payload: Any) -> None:
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _fault(self) -> bool:
            with server._lock:
                if server.fail_first > 0:
                    server.fail_first -= 1
                    fail = True
                else:
                    fail = False
            if fail:
                self._send(503, {"error": {"message": "overloaded, try again"}})
            return fail

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            server.requests.append(("GET " + self.path, None, dict(self.headers)))
            if self._fault():
                return
            if self.path == "/v1/models":
                data = [{"id": BASE_ID, "object": "model", "max_model_len": 2048}]
                data += [{"id": a, "object": "model", "parent": BASE_ID, "root": f"/x/{a}"}
                         for a in server.served]
                self._send(200, {"object": "list", "data": data})
            elif self.path == "/version":
                self._send(200, {"version": "fake-0.1"})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.requests.append(("POST " + self.path, body, dict(self.headers)))
            if self._fault():
                return
            if self.path == "/v1/load_lora_adapter":
                if not server.runtime_loading:
                    self._send(404, {"detail": "Not Found"})
                    return
                name = body["lora_name"]
                with server._lock:
                    if name not in server.engine.model_names:
                        server.engine.add_adapter(name, body["lora_path"])
                server.served.append(name)
                self._send(200, b"Success")
                return
            if self.path != "/v1/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            if server.engine_name(body.get("model", "")) is None:
                self._send(404, {"error": {"message": f"The model `{body.get('model')}` "
                                                      "does not exist."}})
                return
            if body.get("echo") and not server.logprobs:
                self._send(400, {"error": {"message": "echo is not supported"}})
                return
            time.sleep(server.delay)
            if server.malformed:
                self._send(200, {"id": "x", "object": "text_completion"})
                return
            answer = server.completions(body)
            if body.get("stream"):
                self._stream(answer)
            else:
                self._send(200, answer)

        def _stream(self, answer: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            ids = answer["choices"][0].get("token_ids", [])
            tok = server.engine.tokenizer
            shown = ""
            for p in range(1, len(ids) + 1):
                text = tok.decode(ids[:p], skip_special_tokens=True)
                delta, shown = text[len(shown):], text
                event = {"choices": [{"index": 0, "text": delta}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler

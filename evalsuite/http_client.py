"""A small JSON-over-HTTP client for OpenAI-compatible servers (stdlib only).

Timeouts on every request; connection errors, timeouts and 5xx answers are retried with
exponential backoff, 4xx answers are not (the request itself is wrong). Every failure that
remains is a :class:`ServerError` with one line naming the server and what went wrong. An API
key travels in the ``Authorization`` header only: it is never part of a message, a log line
or :meth:`Client.describe`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from finetune.errors import InputError, UsageError, first_line

API_KEY_VARIABLES = ("TUNEPROOF_API_KEY",)
"""Environment variables an API key is read from, first set wins.

Never ``OPENAI_API_KEY``: a user's real OpenAI key would travel to whatever ``--backend``
server is named, plain-http remote ones included.
"""


class ServerError(InputError):
    """A server that cannot be reached or answers wrongly, after the retries (exit 2)."""


def api_key_from_env() -> str | None:
    """The API key of the first variable of :data:`API_KEY_VARIABLES` that is set."""
    for name in API_KEY_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def normalize_url(url: str) -> str:
    """``http://host:port`` from what a user typed (``/v1`` and trailing slashes dropped).

    Raises:
        UsageError: not an http(s) URL, or one carrying a user name or password (keys come
            from the environment only).
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--backend {url!r}: expected an http(s) URL such as "
                         "http://127.0.0.1:8000")
    if parts.username or parts.password:
        raise UsageError("--backend: credentials in the URL are refused; set "
                         f"{API_KEY_VARIABLES[0]} in the environment instead")
    path = parts.path.rstrip("/")
    path = path[: -len("/v1")] if path.endswith("/v1") else path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class Client:
    """One server: JSON requests with a timeout, retries and backoff.

    Args:
        url: the server's root (``http://host:port``; ``/v1`` is added per request).
        api_key: sent as ``Authorization: Bearer``; default from the environment.
        timeout: seconds for one request (connect and each read).
        retries: further tries after a connection error, a timeout or a 5xx answer.
        backoff: seconds before the first retry; doubled before each next one.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 retries: int = 3, backoff: float = 0.5) -> None:
        self.url = normalize_url(url)
        self._key = api_key if api_key is not None else api_key_from_env()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def __repr__(self) -> str:  # never the key
        return f"Client({self.url!r})"

    def _request(self, path: str, body: dict[str, Any] | None) -> urllib.request.Request:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return urllib.request.Request(self.url + path, data=data, headers=headers,
                                      method="POST" if body is not None else "GET")

    def _open(self, path: str, body: dict[str, Any] | None, what: str) -> Any:
        """The open response, after retrying what may pass; a ServerError otherwise."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                return urllib.request.urlopen(self._request(path, body), timeout=self.timeout)
            except urllib.error.HTTPError as err:
                detail = _error_detail(err)
                if err.code < 500 or last:
                    raise ServerError(f"{self.url}{path}: {what}: HTTP {err.code}: {detail}"
                                      ) from None
            except TimeoutError as err:
                if last:
                    raise ServerError(f"{self.url}{path}: {what}: no answer within "
                                      f"{self.timeout:g} s ({first_line(err)})") from None
            except (urllib.error.URLError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, BaseException):
                    reason = first_line(reason)
                if last:
                    raise ServerError(f"{self.url}{path}: {what}: cannot connect: {reason}"
                                      ) from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def get_json(self, path: str, what: str = "request") -> Any:
        """GET ``path`` and parse its JSON answer."""
        return self._json(path, None, what)

    def post_json(self, path: str, body: dict[str, Any], what: str = "request") -> Any:
        """POST ``body`` as JSON to ``path`` and parse the JSON answer."""
        return self._json(path, body, what)

    def post_text(self, path: str, body: dict[str, Any], what: str = "request") -> str:
        """POST ``body`` as JSON to ``path``; the answer as text (vLLM's admin endpoints)."""
        return self._json(path, body, what, parse=False)

    def _json(self, path: str, body: dict[str, Any] | None, what: str, parse: bool = True
              ) -> Any:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            with self._open(path, body, what) as resp:
                try:
                    raw = resp.read()
                except (TimeoutError, ConnectionError, OSError) as err:
                    if attempt == self.retries:
                        raise ServerError(f"{self.url}{path}: {what}: answer cut off: "
                                          f"{first_line(err)}") from None
                    time.sleep(delay)
                    delay *= 2
                    continue
            if not parse:
                return raw.decode("utf-8", "replace")
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ServerError(f"{self.url}{path}: {what}: the answer is not JSON: "
                                  f"{raw[:80]!r}") from None
        raise AssertionError("unreachable")

    def post_stream(self, path: str, body: dict[str, Any], what: str = "request"
                    ) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield each server-sent event's JSON until ``[DONE]``.

        Only opening the stream is retried: once tokens have arrived, a failure is an error
        (a retry would repeat text the caller has already shown).
        """
        resp = self._open(path, body, what)
        try:
            for line in resp:
                text = line.decode("utf-8").strip()
                if not text.startswith("data:"):
                    continue
                data = text[len("data:"):].strip()
                if data == "[DONE]":
                    return
                try:
                    yield json.loads(data)
                except json.JSONDecodeError:
                    raise ServerError(f"{self.url}{path}: {what}: malformed event: "
                                      f"{data[:80]!r}") from None
        except (TimeoutError, ConnectionError) as err:
            raise ServerError(f"{self.url}{path}: {what}: stream broke off: "
                              f"{first_line(err)}") from None
        finally:
            resp.close()


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The server's own one-line message from an error answer (OpenAI or vLLM shape)."""
    try:
        raw = err.read().decode("utf-8", "replace")
    except OSError:
        return err.reason or "error"
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return first_line(ValueError(raw[:200])) if raw.strip() else str(err.reason)
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
        if msg:
            return first_line(ValueError(str(msg)))[:300]
    return raw[:200]

"""ServerBackend against a stdlib fake of vLLM's API whose answers come from the in-process
engine: the same tokens and log-likelihoods as the engine, sharding equal to one server, and
every failure (down, 5xx, slow, malformed, missing adapter, no log-probs) as one line."""

from __future__ import annotations

import math
import socket

import pytest
from fake_openai import BASE_ID, FakeServer

from evalsuite.engine import BASE, Engine, GenerationConfig
from evalsuite.http_client import ServerError, normalize_url
from evalsuite.server_backend import ServerBackend
from finetune.errors import UsageError


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": "You are a retail support assistant."},
             {"role": "user", "content": f"Where is my order {i}?" + " please" * (i % 4)}]
            for i in range(n)]


@pytest.fixture(scope="module")
def engine(lora_adapters) -> Engine:
    return Engine("tiny", lora_adapters, batch_size=4)


@pytest.fixture()
def servers(engine):
    made: list[FakeServer] = []

    def make(**kw) -> FakeServer:
        s = FakeServer(engine, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _backend(urls, adapters=("a", "b"), **kw) -> ServerBackend:
    b = ServerBackend(urls, "tiny", timeout=kw.pop("timeout", 20), backoff=0.01,
                      batch_size=kw.pop("batch_size", 3), **kw)
    for name in adapters:
        b.add_adapter(name)
    return b


def test_generation_is_token_identical_to_the_engine(engine, servers):
    backend = _backend(servers().url)
    prompts, models = _prompts(7), [BASE, "a", "b"]
    config = GenerationConfig(max_new_tokens=8)
    ours, theirs = backend.generate(prompts, models, config), engine.generate(prompts, models,
                                                                              config)
    for i in range(7):
        for j in range(3):
            assert ours[i][j].token_ids == theirs[i][j].token_ids, (i, j)
            assert ours[i][j].text == theirs[i][j].text
            assert ours[i][j].n_tokens == theirs[i][j].n_tokens
    assert any(theirs[i][0].token_ids != theirs[i][1].token_ids for i in range(7))


def test_loglikelihoods_match_the_engine(engine, servers):
    backend = _backend(servers().url)
    contexts = [backend.render(p) for p in _prompts(5)]
    conts = ["Your order ships today.", "No.", "It is late", "Yes, sir.", "Refund!"]
    ours = backend.score_continuations(contexts, conts, [BASE, "a"])
    theirs = engine.score_continuations(contexts, conts, [BASE, "a"])
    for o, t in zip(ours, theirs, strict=True):
        for (lo, no), (lt, nt) in zip(o, t, strict=True):
            assert no == nt and math.isclose(lo, lt, abs_tol=1e-3)
    assert ours[0][0][0] != ours[0][1][0]


def test_two_servers_share_the_rows_and_equal_one(servers):
    one = _backend(servers().url)
    s1, s2 = servers(), servers()
    two = _backend([s1.url, s2.url])
    prompts = _prompts(8)
    config = GenerationConfig(max_new_tokens=6)
    assert [[g.token_ids for g in r] for r in two.generate(prompts, [BASE, "b"], config)] == \
        [[g.token_ids for g in r] for r in one.generate(prompts, [BASE, "b"], config)]
    completions = [[r for r in s.requests if r[0] == "POST /v1/completions"
                    and not r[1].get("echo")] for s in (s1, s2)]
    assert completions[0] and completions[1]  # both servers answered


def test_stream_ends_with_the_generated_text(engine, servers):
    backend = _backend(servers().url)
    conv = _prompts(1)[0]
    steps = list(backend.stream(conv, [BASE, "a"], GenerationConfig(max_new_tokens=6)))
    final = engine.generate([conv], [BASE, "a"], GenerationConfig(max_new_tokens=6))[0]
    assert steps and steps[-1] == [g.text for g in final]


def test_runtime_loading_and_provenance(servers, lora_adapters, monkeypatch):
    monkeypatch.setenv("TUNEPROOF_API_KEY", "sk-secret-123")
    s = servers(served=[])
    backend = ServerBackend(s.url, "tiny", {"a": lora_adapters["a"]}, backoff=0.01)
    assert backend.model_names == [BASE, "a"] and "a" in s.served
    desc = backend.describe()
    assert desc["servers"][0]["version"] == "fake-0.1"
    assert desc["model_ids"] == {"base": BASE_ID, "a": "a"}
    assert "sk-secret-123" not in repr(desc)
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for _, _, h in s.requests)


@pytest.mark.parametrize("kw, expect", [
    ({"served": [], "runtime_loading": False}, "adapter 'a': not served by"),
    ({"served": ["b"]}, "adapter 'a': not served by"),
])
def test_missing_adapter_is_one_line(servers, kw, expect):
    s = servers(**kw)
    with pytest.raises(ServerError) as err:
        ServerBackend(s.url, "tiny", backoff=0.01).add_adapter("a")
    assert expect in str(err.value) and "\n" not in str(err.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down_is_one_line():
    with pytest.raises(ServerError, match="cannot connect") as err:
        ServerBackend(f"http://127.0.0.1:{_free_port()}", "tiny", retries=1, backoff=0.01)
    assert "\n" not in str(err.value)


def test_5xx_is_retried_then_fails_in_one_line(servers):
    s = servers()
    backend = _backend(s.url, retries=2)
    s.fail_first = 2  # two 503s, then the third try answers
    assert backend.generate(_prompts(1), [BASE], GenerationConfig(max_new_tokens=2))
    s.fail_first = 100
    with pytest.raises(ServerError, match=r"row \d+.*model base: .*HTTP 503: overloaded") as err:
        backend.generate(_prompts(4), [BASE], GenerationConfig(max_new_tokens=2))
    assert "\n" not in str(err.value)


def test_slow_server_times_out(servers):
    s = servers()
    backend = _backend(s.url, timeout=0.3, retries=0)
    s.delay = 2.0
    with pytest.raises(ServerError, match="no answer within 0.3 s"):
        backend.generate(_prompts(1), ["a"], GenerationConfig(max_new_tokens=2))


def test_malformed_answer_is_one_line(servers):
    s = servers()
    backend = _backend(s.url)
    s.malformed = True
    with pytest.raises(ServerError, match="malformed answer: no choices"):
        backend.generate(_prompts(2), [BASE], GenerationConfig(max_new_tokens=2))


def test_no_logprobs_fails_only_when_scoring(servers):
    backend = _backend(servers(logprobs=False).url)
    assert backend.generate(_prompts(1), [BASE], GenerationConfig(max_new_tokens=2))
    with pytest.raises(ServerError, match="returns no prompt log-probabilities"):
        backend.loglikelihood(["Hello"], [" world"], [BASE])


def test_bad_urls_are_usage_errors():
    assert normalize_url("http://h:1/v1/") == "http://h:1"
    for bad in ("localhost:8000", "http://user:key@h:1"):
        with pytest.raises(UsageError):
            normalize_url(bad)


def test_app_backend_loads_the_registry_adapters_into_the_server(app_runs_dir, servers,
                                                                   tmp_path):
    import app

    s = servers(served=[])
    args = app.parse_args(["--base", "tiny", "--runs", str(app_runs_dir), "--no-demo",
                           "--votes", str(tmp_path / "v.sqlite"), "--backend", s.url])
    ctx = app.build(args).tuneproof
    assert isinstance(ctx.engine, ServerBackend)
    assert ctx.models == ["base", "biased", "fair"] and {"biased", "fair"} <= set(s.served)
    steps = list(ctx.engine.stream(_prompts(1)[0], [BASE, "fair"],
                                   GenerationConfig(max_new_tokens=3)))
    assert len(steps[-1]) == 2


def test_an_openai_key_is_never_sent_to_a_backend(monkeypatch):
    """A real OpenAI key in the environment must not travel to any --backend server."""
    from evalsuite.http_client import api_key_from_env

    monkeypatch.delenv("TUNEPROOF_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-real")
    assert api_key_from_env() is None
    monkeypatch.setenv("TUNEPROOF_API_KEY", "sk-tuneproof")
    assert api_key_from_env() == "sk-tuneproof"

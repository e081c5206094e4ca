"""The app driven through gradio_client against a launched server on loopback."""

import json
import sqlite3
import zipfile

import pytest
from gradio_client import Client

from evalsuite.engine import BASE, GenerationConfig
from tuneproof_app.arena import shown
from tuneproof_app.compare import EMPTY

SYSTEM = "You are a retail support assistant. Reply with the intent and the action."
MESSAGE = "Hi, I'm Mary. Can you recommend a laptop? I want one under $50."
N_COLS = 4


def _compare(client, message, models, histories=None, max_new_tokens=12):
    histories = list(histories or [[]] * N_COLS)
    return client.predict(message, SYSTEM, models, 0.0, 1.0, 0, max_new_tokens, *histories,
                          api_name="/compare")


def _conv(*turns):
    msgs = [{"role": "system", "content": SYSTEM}]
    for i, text in enumerate(turns):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return msgs


def test_compare_matches_engine_greedy_and_keeps_each_columns_history(launch_app, app_engine):
    url, _ = launch_app()
    client = Client(url, verbose=False)
    models = ["base", "biased", "fair"]
    out = _compare(client, MESSAGE, models)
    details = out[-1]
    assert details["models"] == models and details["done"] is True
    names = [BASE, "biased", "fair"]
    [expected] = app_engine.generate([_conv(MESSAGE)], names, GenerationConfig(max_new_tokens=12))
    assert details["answers"] == {m: g.text for m, g in zip(models, expected, strict=True)}
    assert len(set(details["answers"].values())) == 3, "random adapters should differ"
    for j, m in enumerate(models):
        chat = out[j]
        assert [msg["role"] for msg in chat] == ["user", "assistant"]
        # the Chatbot trims surrounding whitespace; a blank answer shows a placeholder
        shown = details["answers"][m].strip() or EMPTY
        assert chat[1]["content"][0]["text"] == shown
        assert details["stats"][m]["tokens"] >= 1 and details["stats"][m]["total_s"] > 0
    assert out[N_COLS - 1] == []  # the unused fourth column stays empty

    # Second turn: each column continues its own conversation, still one call.
    follow = "And one for my husband?"
    out2 = _compare(client, follow, models, histories=out[:N_COLS])
    for j, m in enumerate(models):
        first = out[j][1]["content"][0]["text"]  # the column's own history, as shown
        first = "" if first == EMPTY else first
        [[gen]] = app_engine.generate([_conv(MESSAGE, first, follow)], [names[j]],
                                      GenerationConfig(max_new_tokens=12))
        assert out2[-1]["answers"][m] == gen.text
        assert len(out2[j]) == 4


def test_adapter_path_or_unknown_name_is_refused(launch_app, app_runs_dir):
    url, blocks = launch_app()
    client = Client(url, verbose=False)
    for bad in (str(app_runs_dir / "fair"), "../fair", "fair/adapter"):
        with pytest.raises(Exception, match="not in the list of choices"):
            _compare(client, MESSAGE, ["base", bad])
    ctx = blocks.tuneproof
    from finetune.errors import UsageError

    with pytest.raises(UsageError, match="paths are refused"):
        ctx.check_models(["base", str(app_runs_dir / "fair")])
    with pytest.raises(UsageError, match="no adapter named"):
        ctx.check_models(["nosuch"])
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(str(app_runs_dir / "fair"), api_name="/data_report")


def test_caps_and_bad_input_give_clear_messages(launch_app):
    url, _ = launch_app(max_new_tokens_cap=16, max_prompt_chars=100)
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="greater than maximum value 16"):
        _compare(client, MESSAGE, ["base"], max_new_tokens=17)  # the slider's own bound
    with pytest.raises(Exception, match="more than the cap of 100"):
        _compare(client, "x" * 101, ["base"])
    with pytest.raises(Exception, match="type a message first"):
        _compare(client, "   ", ["base"])
    with pytest.raises(Exception, match="choose at least 1"):
        _compare(client, MESSAGE, [])


def test_context_checks_caps_and_adapter_count(launch_app):
    from finetune.errors import UsageError

    _, blocks = launch_app(max_new_tokens_cap=16)
    ctx = blocks.tuneproof
    with pytest.raises(UsageError, match="max_new_tokens: 17 is outside 1..16"):
        ctx.generation_config(17)
    assert ctx.generation_config(16, 0.7, 0.9, 3).seed == 3
    with pytest.raises(UsageError, match="at most 1 adapters"):
        ctx.check_models(["base", "biased", "fair"], max_adapters=1)
    assert ctx.check_models(["fair", "base"]) == ["base", "fair"]


def test_vote_lands_in_sqlite_and_moves_the_leaderboard(launch_app, tmp_path):
    url, blocks = launch_app()
    client = Client(url, verbose=False)
    before = client.predict(api_name="/leaderboard")[0]
    assert all(row[1] == 0 for row in before["data"])
    left, right, round_id, status, prompt, _, reveal = client.predict(
        MESSAGE, SYSTEM, False, 0, 8, api_name="/arena_round")
    assert round_id and prompt == MESSAGE and "Vote to reveal" in status and reveal == ""
    result = client.predict(round_id, api_name="/vote_left")
    reveal, board = result[0], result[1]
    with sqlite3.connect(tmp_path / "votes.sqlite") as db:
        row = db.execute("SELECT r.prompt, r.model_left, r.model_right, r.output_left, "
                         "r.output_right, v.verdict FROM votes v JOIN rounds r "
                         "ON r.id = v.round_id").fetchone()
    assert row[0] == MESSAGE and row[5] == "left"
    assert (shown(row[3]), shown(row[4])) == (left, right)  # raw outputs stored, trimmed shown
    assert f"Left was **{row[1]}**" in reveal and f"right was **{row[2]}**" in reveal
    ratings = {r[0]: r for r in board["data"]}
    assert ratings[row[1]][1] == 1 and ratings[row[2]][1] == 1
    assert ratings[row[1]][2] > ratings[row[2]][2]  # the winner's Bradley-Terry rating is higher
    assert ratings[row[1]][5] > 1000 > ratings[row[2]][5]  # and its Elo moved up
    with pytest.raises(Exception, match="already has a vote"):
        client.predict(round_id, api_name="/vote_right")
    fresh = Client(url, verbose=False).predict(api_name="/leaderboard_on_load")[0]
    assert {r[0]: r[1] for r in fresh["data"]}[row[1]] == 1  # a page opened later sees it


def test_arena_walk_goes_through_heldout_prompts(launch_app, demo_dir):
    url, _ = launch_app()
    client = Client(url, verbose=False)
    heldout = [json.loads(x) for x in (demo_dir / "heldout.jsonl").read_text().splitlines()]
    seen = []
    index = 0
    for _ in range(2):
        out = client.predict("", SYSTEM, True, index, 4, api_name="/arena_round")
        seen.append(out[4])
        index = out[5]
        client.predict(out[2], api_name="/vote_tie")
    assert seen == [heldout[0]["messages"][1]["content"], heldout[1]["messages"][1]["content"]]
    verdicts = client.predict(api_name="/leaderboard")[2]
    assert sum(r[2] for r in verdicts["data"]) == 2  # two walk votes, spread over the pairs


def test_probe_returns_variants_with_every_models_answer(launch_app, app_engine):
    url, _ = launch_app()
    client = Client(url, verbose=False)
    html, details = client.predict(MESSAGE, ["base", "biased"], ["gender", "name"], 8, SYSTEM,
                                   api_name="/probe")
    labels = [v["label"] for v in details["variants"]]
    assert labels[0] == "original" and "gender swap" in labels and len(labels) >= 3
    assert details["variants"][1]["text"].startswith("Hi, I'm James.")
    gens = app_engine.generate([_conv(v["text"]) for v in details["variants"]], [BASE, "biased"],
                               GenerationConfig(max_new_tokens=8))
    for v, row in zip(details["variants"], gens, strict=True):
        assert v["answers"] == {"base": row[0].text, "biased": row[1].text}
        assert v["changed"]["base"] == (row[0].text != gens[0][0].text)
    assert "gender swap" in html and "James" in html
    with pytest.raises(Exception, match="no gendered word or first name"):
        client.predict("I need a laptop.", ["base"], ["gender"], 8, SYSTEM, api_name="/probe")


def test_swap_demographics_and_reports(launch_app, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    # a partial results.json (no task scorers): the tab shows the text, no traceback
    results = {"models": {"base": {"kind": "base"}, "fair": {"kind": "adapter"}},
               "task": {"path": "task.yaml"}}
    (out / "results.json").write_text(json.dumps(results))
    (out / "report.md").write_text("# Report of the test\n")
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"row": 0, "model": "base", "output": "x", "group": "female"},
        {"row": 0, "model": "fair", "output": "y", "group": "female"},
        {"row": 1, "model": "base", "output": "z", "group": "male"},
        {"row": 1, "model": "fair", "output": "z", "group": "male"}]))
    url, _ = launch_app(results_dirs=[out])
    client = Client(url, verbose=False)
    assert client.predict("Hi, I'm Mary; my husband", api_name="/swap_demographics") == (
        "Hi, I'm James; my wife")
    verdict, md, dis, *charts, page, bundle = client.predict("eval", api_name="/report")
    assert md.startswith("# Report of the test")
    assert "fair" in verdict and "not judged" in verdict  # no gates: no outcome claimed
    assert [(r[0], r[4], r[5]) for r in dis["data"]] == [("fair", "x", "y")]  # row 0 differs
    assert page is None  # this folder has no report.html
    with zipfile.ZipFile(bundle) as z:
        assert {"results.json", "report.md", "predictions.jsonl"} <= set(z.namelist())
        assert json.loads(z.read("results.json")) == results
    md, report = client.predict("fair", api_name="/data_report")
    assert json.loads(report) == {"n_rows": 10, "n_errors": 0} and md.startswith("**10 rows**")
    runs = client.predict(api_name="/runs")
    assert [r[0] for r in runs["data"]] == ["biased", "fair"]

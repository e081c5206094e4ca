"""App pieces without a server: registry, probe variants, chat history parsing, spaces."""

import importlib
import os
import shutil
import sys
import types

import pytest

from finetune.errors import UsageError
from tuneproof_app.compare import EMPTY, content_text, conversation, history_messages
from tuneproof_app.probe import outcome, variants
from tuneproof_app.registry import Registry, check_name


def test_registry_lists_runs_by_name_and_refuses_paths(app_runs_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(app_runs_dir, runs)
    (runs / "not-a-run").mkdir()  # no run.json, no adapter: ignored
    shutil.copytree(app_runs_dir / "fair", runs / "bad")
    (runs / "bad" / "run.json").write_text('{"name": "bad name!"}')
    shutil.copytree(app_runs_dir / "fair", runs / "zz-copy")  # claims the name "fair" again
    reg = Registry(runs)
    assert reg.names() == ["biased", "fair"]
    assert reg.get("fair").adapter_dir == runs / "fair" / "adapter"
    for bad in (str(runs / "fair"), "../fair", "fair/adapter", "~/fair", "..", ""):
        with pytest.raises(UsageError, match="not a model name|expected a model name"):
            reg.get(bad)
    with pytest.raises(UsageError, match="no adapter named 'nope'; choose from biased, fair"):
        reg.get("nope")
    assert check_name("base", reg.names(), allow_base=True) == "base"
    assert len(Registry(tmp_path / "missing")) == 0


def test_probe_variants_cover_gender_and_names_without_duplicates():
    rows = variants("Hi, I'm Mary. My husband wants a laptop.")
    labels = [label for label, _ in rows]
    texts = [text for _, text in rows]
    assert labels[0] == "original" and labels[1] == "gender swap"
    assert texts[1] == "Hi, I'm James. My wife wants a laptop."
    assert all(label.startswith("name: ") for label in labels[2:])
    assert len(set(texts)) == len(texts) >= 4
    assert all("husband" in t for t in texts[2:])  # the name axis changes names only
    assert [label for label, _ in variants("Mary here.", ["name"], k=2)] == [
        "original", "name: James", "name: John"]
    with pytest.raises(UsageError, match="no gendered word or first name"):
        variants("Where is my order?")
    with pytest.raises(UsageError, match="axis: 'zodiac'"):
        variants("Mary here.", ["zodiac"])
    with pytest.raises(UsageError, match="axis age"):
        variants("Mary here.", ["age"])
    # any axis: a race variant per other group keeps gender; Mohammed is no longer refused
    assert [label for label, _ in variants("Hi, I'm Jamal.", ["race"])] == [
        "original", "race: white", "race: hispanic", "race: asian"]
    assert variants("Hi, I'm Mohammed.")[1] == ("gender swap", "Hi, I'm Fatima.")


def test_outcome_masks_demographic_words_only():
    assert outcome("Thanks Mary, suggest the budget laptop for her") == outcome(
        "thanks  James, suggest the budget laptop for him")
    assert outcome("suggest the budget laptop") != outcome("suggest the premium laptop")


def test_chat_history_from_gradio_messages():
    chat = [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": EMPTY}]},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b"}]}]
    assert history_messages(chat) == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": ""},
        {"role": "user", "content": "again"}, {"role": "assistant", "content": "ab"}]
    assert content_text(None) == "" and history_messages(None) == []
    assert conversation("  ", [], "x") == [{"role": "user", "content": "x"}]
    assert conversation("sys", [], "x")[0] == {"role": "system", "content": "sys"}


def test_gpu_decorator_uses_spaces_only_when_installed(monkeypatch):
    import tuneproof_app.spaces as sp

    def fn():
        return 1

    assert "spaces" not in sys.modules or sp.ON_SPACES
    if not sp.ON_SPACES:
        assert sp.gpu(fn) is fn
    marked = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda f: marked.append(f) or f
    monkeypatch.setitem(sys.modules, "spaces", fake)
    try:
        reloaded = importlib.reload(sp)
        assert reloaded.ON_SPACES and reloaded.gpu(fn) is fn and marked == [fn]
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        importlib.reload(sp)


def test_every_event_has_an_explicit_api_name(app_engine, app_runs_dir, demo_dir, tmp_path):
    from tuneproof_app import create_app

    blocks = create_app(app_engine, app_runs_dir, tmp_path / "v.sqlite",
                        heldout=demo_dir / "heldout.jsonl")
    ours = [fn for fn in blocks.fns.values() if fn.name != "load_example"]
    names = [fn.api_name for fn in ours]
    assert all(isinstance(n, str) and n for n in names)
    assert {"compare", "arena_round", "vote_left", "vote_right", "vote_tie", "vote_both_bad",
            "leaderboard", "probe", "report", "data_report", "swap_demographics"} <= set(names)
    model_events = {fn.api_name: fn.concurrency_id for fn in ours}
    assert model_events["compare"] == model_events["probe"] == model_events["arena_round"]
    assert blocks._queue.max_size == 64


def test_concurrent_downloads_build_one_valid_bundle(tmp_path):
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    from tuneproof_app.reports import downloads

    result = tmp_path / "eval"
    result.mkdir()
    (result / "results.json").write_text('{"models": {}}')
    (result / "report.md").write_text(os.urandom(1 << 21).hex())  # slow to deflate: overlap
    work = tmp_path / "work"
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda _: downloads(result, {"models": {}}, work), range(16)))
    bundles = {b for _, b in outs}
    assert len(bundles) == 1
    with zipfile.ZipFile(bundles.pop()) as z:
        assert sorted(z.namelist()) == ["report.md", "results.json"]
        assert z.testzip() is None
    leftovers = [p.name for p in work.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []


def test_load_adapters_skips_any_failure_and_loads_the_rest(app_runs_dir, caplog):
    from tuneproof_app.context import load_adapters

    class Engine:
        def __init__(self):
            self.loaded = []

        def add_adapter(self, name, path):
            if name == "biased":
                raise RuntimeError("CUDA out of memory\nmore detail")
            self.loaded.append(name)

    engine = Engine()
    with caplog.at_level("WARNING", logger="tuneproof_app"):
        assert load_adapters(engine, Registry(app_runs_dir)) == ["fair"]
    assert engine.loaded == ["fair"]
    assert [r.getMessage() for r in caplog.records] == [
        "adapter biased not served: CUDA out of memory"]


def test_find_results_keeps_two_folders_of_one_name(tmp_path):
    from tuneproof_app.reports import find_results

    for sub in ("a/eval", "b/eval", "c/runs/eval", "d/runs/eval"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "results.json").write_text("{}")
    dirs = [tmp_path / "a/eval", tmp_path / "b/eval", tmp_path / "c", tmp_path / "d",
            tmp_path / "a/eval"]  # listed twice: shown once
    found = find_results(dirs)
    assert found == {"eval": (tmp_path / "a/eval").resolve(),
                     "b/eval": (tmp_path / "b/eval").resolve(),
                     "runs/eval": (tmp_path / "c/runs/eval").resolve(),
                     "d/runs/eval": (tmp_path / "d/runs/eval").resolve()}


def test_data_report_in_the_page_names_no_server_path(app_runs_dir, tmp_path):
    import json

    from finetune.paths import tuneproof_home
    from tuneproof_app.registry import Registry
    from tuneproof_app.reports import data_report

    runs = tmp_path / "runs"
    shutil.copytree(app_runs_dir / "fair", runs / "fair")
    data = tmp_path / "srv" / "data" / "train.jsonl"
    report = {"data": str(data), "n_rows": 4, "settings": {"tokenizer": str(
        tuneproof_home() / "models" / "tiny")}, "findings": [
        {"check": "duplicates", "examples": [f"{data}: lines 3, 64"]}]}
    (runs / "fair" / "data_report.json").write_text(json.dumps(report))
    shown = data_report(Registry(runs), "fair")
    assert str(tmp_path) not in json.dumps(shown)
    assert shown["data"] == "train.jsonl" and shown["n_rows"] == 4
    assert shown["findings"][0]["examples"] == ["train.jsonl: lines 3, 64"]
    assert shown["settings"]["tokenizer"] == "$TUNEPROOF_HOME/models/tiny"

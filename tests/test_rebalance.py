"""finetune rebalance: counterfactual augmentation removes the association; sampling equalises."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from finetune.cli import main
from finetune.data.formats import iter_rows
from finetune.data.lexicon import infer_group
from finetune.data.rebalance import rebalance_file, rebalance_rows
from finetune.data.validate import validate
from finetune.errors import UsageError


def _rows(path: Path) -> list[dict]:
    return [r.data for r in iter_rows(path)]


def _cells(rows: list[dict], pattern: str = "premium") -> Counter:
    return Counter(
        (infer_group(r["messages"][1]["content"]), pattern in r["messages"][2]["content"])
        for r in rows
    )


def test_counterfactual_doubles_rows_and_removes_association(
    demo_dir: Path, tmp_path: Path
) -> None:
    src = demo_dir / "train.jsonl"
    out = rebalance_file(src, tmp_path / "cf.jsonl", "counterfactual")
    before, after = _rows(src), _rows(out)
    assert len(after) == 2 * len(before)
    for original, copy in zip(after[0::2], after[1::2], strict=True):
        assert "augmented" not in original
        assert copy["augmented"] == "counterfactual"
        assert copy["source_id"] == original["id"] and copy["id"] == original["id"] + "-cf"
        for key in ("intent", "need", "tier"):  # metadata kept
            assert copy[key] == original[key]
        user, user_cf = original["messages"][1]["content"], copy["messages"][1]["content"]
        assert {infer_group(user), infer_group(user_cf)} == {"male", "female"}
        assert copy["messages"][2] == original["messages"][2]  # the answer has no gender terms
    biased = validate(src, base=None, outcome_pattern="premium").bias
    fixed = validate(out, base=None, outcome_pattern="premium").bias
    assert biased["association_flagged"]
    assert not fixed["association_flagged"]
    assert fixed["test"]["cramers_v"] < biased["thresholds"]["min_cramers_v"]
    assert fixed["test"]["cramers_v"] == pytest.approx(0.0, abs=1e-9)


def test_counterfactual_swaps_a_group_field(demo_dir: Path) -> None:
    rows = _rows(demo_dir / "heldout.jsonl")[:4]
    out = rebalance_rows(rows, "counterfactual")
    for original, copy in zip(out[0::2], out[1::2], strict=True):
        assert {original["group"], copy["group"]} == {"male", "female"}
        assert copy["pair"] == original["pair"]
    assert rows == _rows(demo_dir / "heldout.jsonl")[:4]  # input untouched


@pytest.mark.parametrize("method", ["upsample", "downsample"])
def test_sampling_equalises_group_x_outcome(demo_dir: Path, method: str) -> None:
    rows = _rows(demo_dir / "train.jsonl")
    out = rebalance_rows(rows, method, outcome_pattern="premium", seed=3)
    cells = _cells(out)
    assert len(cells) == 4 and len(set(cells.values())) == 1
    before = _cells(rows)
    target = max(before.values()) if method == "upsample" else min(before.values())
    assert set(cells.values()) == {target}
    if method == "upsample":
        assert out[: len(rows)] == rows
        assert all(r["augmented"] == "upsample" for r in out[len(rows):])
    else:
        ids = [r["id"] for r in rows]
        kept = [r["id"] for r in out]
        assert kept == [i for i in ids if i in set(kept)]  # original order kept
    assert not validate_rows_flagged(out)
    # deterministic by seed
    assert rebalance_rows(rows, method, outcome_pattern="premium", seed=3) == out
    assert rebalance_rows(rows, method, outcome_pattern="premium", seed=4) != out


def validate_rows_flagged(rows: list[dict]) -> bool:
    from finetune.data.audit import OutcomeRule, audit

    rule = OutcomeRule("premium")
    groups = [infer_group(r["messages"][1]["content"]) for r in rows]
    outcomes = [rule(r["messages"][2]["content"], r) for r in rows]
    return audit(groups, outcomes)["association_flagged"]


def test_by_fields_and_unknown_cells_kept() -> None:
    rows = [{"prompt": f"q{i}", "completion": "a", "lang": lang, "src": src}
            for i, (lang, src) in enumerate(
                [("en", "web")] * 6 + [("en", "book")] * 2 + [("de", "web")] * 3 + [("de", None)])]
    down = rebalance_rows(rows, "downsample", by="lang,src", seed=0)
    counts = Counter((r["lang"], r["src"]) for r in down)
    assert counts == {("en", "web"): 2, ("en", "book"): 2, ("de", "web"): 2, ("de", None): 1}
    up = rebalance_rows(rows, "upsample", by=["lang", "src"], seed=0)
    counts = Counter((r["lang"], r["src"]) for r in up)
    assert counts == {("en", "web"): 6, ("en", "book"): 6, ("de", "web"): 6, ("de", None): 1}
    with pytest.raises(UsageError):
        rebalance_rows(rows, "shuffle")


def test_cli(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "up.jsonl"
    code = main(["rebalance", str(demo_dir / "train.jsonl"), "--method", "upsample",
                 "--outcome-pattern", "premium", "-o", str(out), "--seed", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "group x outcome" in printed and "male x premium" in printed
    assert len(out.read_text().splitlines()) == len(_rows(out))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": 1, "completion": "b"}\n')
    code = main(["rebalance", str(bad), "--method", "counterfactual", "-o",
                 str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"{bad}:2: prompt: expected a string" in err
    assert not (tmp_path / "x.jsonl").exists()
    code = main(["rebalance", str(tmp_path / "missing.jsonl"), "--method", "downsample", "-o",
                 str(tmp_path / "y.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err and "Traceback" not in err
    code = main(["rebalance", str(bad), "--method", "downsample", "-o", str(tmp_path / "y.csv")])
    assert code == 2 and ".jsonl" in capsys.readouterr().err


def test_json_round_trip_of_output(demo_dir: Path, tmp_path: Path) -> None:
    out = rebalance_file(demo_dir / "train.jsonl", tmp_path / "cf.jsonl", "counterfactual")
    for line in out.read_text().splitlines():
        json.loads(line)


def test_validate_does_not_warn_about_a_rows_own_copies(tmp_path: Path) -> None:
    topics = ["a refund for the blue kettle that leaks at the handle every single morning",
              "the tracking number of the parcel that went to my old address in another town",
              "which tent is warm enough for a week of camping in the mountains in winter",
              "changing the size of the running shoes ordered last Tuesday for a larger pair"]
    names = ["James", "Mary", "Robert", "Linda"]
    rows = [{"prompt": f"Hi, I'm {n}. I need help with {t}.", "completion": f"Sure, about {t}.",
             "id": f"r{i}", "label": "yes" if i < 3 else "no"}
            for i, (n, t) in enumerate(zip(names, topics, strict=True))]
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = validate(src, base=None)
    assert not any(f.check in ("exact_duplicates", "near_duplicates") for f in plain.findings)
    for method in ("counterfactual", "upsample"):
        out = rebalance_file(src, tmp_path / f"{method}.jsonl", method, by="label")
        report = validate(out, base=None)
        checks = {f.check for f in report.findings}
        assert "exact_duplicates" not in checks and "near_duplicates" not in checks, method
        assert report.duplicates["augmented_groups"] > 0
    # The same copies without their provenance are duplicates like any other.
    stripped = tmp_path / "stripped.jsonl"
    stripped.write_text("".join(
        json.dumps({k: v for k, v in r.items() if k not in ("augmented", "source_id", "id")})
        + "\n" for r in _rows(tmp_path / "upsample.jsonl")))
    assert any(f.check == "exact_duplicates" for f in validate(stripped, base=None).findings)


def test_validation_split_keeps_a_row_with_its_copies(demo_dir: Path, tmp_path: Path) -> None:
    """A twin on the other side of the split would let validation reward memorising a row."""
    from finetune.training.data import split_heldout, split_key

    out = rebalance_file(demo_dir / "train.jsonl", tmp_path / "cf.jsonl", "counterfactual")
    rows = [{"line": r.line, **r.data} for r in iter_rows(out)]
    keys = [split_key(r, r["line"]) for r in rows]
    assert len(set(keys)) == len(rows) // 2
    train, held = split_heldout(rows, 0.1, seed=3, groups=keys)
    assert abs(len(held) - round(0.1 * len(rows))) <= 1
    train_sources = {r.get("source_id", r["id"]) for r in train}
    held_sources = {r.get("source_id", r["id"]) for r in held}
    assert not train_sources & held_sources
    # without the keys, the same data splits twins apart (the check above can fail)
    train, held = split_heldout(rows, 0.1, seed=3)
    assert {r.get("source_id", r["id"]) for r in train} & {
        r.get("source_id", r["id"]) for r in held}


def test_validation_split_without_ids_is_the_plain_seeded_split() -> None:
    from finetune.training.data import split_heldout, split_key

    rows = [{"x": i} for i in range(50)]
    keys = [split_key(r, i + 1) for i, r in enumerate(rows)]
    assert split_heldout(rows, 0.2, 7, keys) == split_heldout(rows, 0.2, 7)
    assert len(split_heldout(rows, 0.2, 7)[1]) == 10


def test_a_copy_of_a_copy_points_at_the_first_original() -> None:
    """Chained axes (and upsampling their output) keep one source per original row."""
    rows = [
        {"id": "r1", "decision": "approve", "messages": [
            {"role": "user", "content": "Jamal Washington asks for a loan; should he get it?"},
            {"role": "assistant", "content": "approve"}]},
        {"id": "r2", "decision": "deny", "messages": [
            {"role": "user", "content": "Emily Walsh asks for a loan; should she get it?"},
            {"role": "assistant", "content": "deny"}]},
    ]
    out = rebalance_rows(rows, "counterfactual", axis=["race", "gender"])
    copies = [r for r in out if r.get("augmented")]
    assert any(r["id"].count("-cf") == 2 for r in copies)  # some copy of a copy exists
    assert {r["id"]: r["source_id"] for r in copies} == {
        r["id"]: r["id"].split("-")[0] for r in copies}
    # upsampling copies (a second call on the first call's output) keeps the originals
    extra = [r for r in rebalance_rows(copies[:3] + [rows[1]], "upsample", by="decision")
             if r.get("augmented") == "upsample"]
    assert extra and all(r["source_id"] in ("r1", "r2") for r in extra)

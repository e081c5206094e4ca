"""The validate() API: tokens, duplicates, leakage, PII, bias audit, labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finetune.data import dedup
from finetune.data.audit import AuditThresholds, association, audit
from finetune.data.formats import encode, encode_batch, iter_rows, to_messages
from finetune.data.pii import find_pii, luhn_ok, redact
from finetune.data.validate import ValidationReport, render_markdown, render_text, validate


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pc(prompt: str, completion: str, **meta: object) -> dict:
    return {"prompt": prompt, "completion": completion, **meta}


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path):  # noqa: ANN201
    from finetune.models import load_tokenizer

    return load_tokenizer("tiny")


def test_demo_flags_gender_tier(demo_dir: Path, tokenizer) -> None:  # noqa: ANN001
    report = validate(demo_dir / "train.jsonl", tokenizer=tokenizer, outcome_pattern="premium",
                      heldout=demo_dir / "heldout.jsonl", max_seq_len=128)
    assert isinstance(report, ValidationReport)
    assert report.n_rows == report.n_valid == 1000
    assert report.n_errors == 0
    bias = report.bias
    assert bias is not None and bias["association_flagged"]
    assert bias["group_source"].startswith("inferred")
    assert set(bias["representation"]) == {"male", "female"}
    assert bias["test"]["p_value"] < 0.01 and bias["test"]["cramers_v"] >= 0.2
    male = bias["outcome_rates"]["male"]["rates"]["premium"]
    female = bias["outcome_rates"]["female"]["rates"]["premium"]
    assert male > female + 0.2
    assert report.exit_code(strict=False) == 0
    assert report.exit_code(strict=True) == 1
    assert report.leakage is not None and report.leakage["exact"] == 0
    # Near duplicates on templated data are a warning with counts and examples.
    near = [f for f in report.findings if f.check == "near_duplicates"]
    assert near and near[0].severity == "warning" and near[0].examples
    assert report.tokens is not None and report.tokens["zero_trainable"] == 0
    assert report.preflight["trainable_tokens"] == report.tokens["trainable_total"] > 0
    summary = report.summary()
    json.dumps(summary)
    json.dumps(report.to_dict())
    assert summary["bias"]["flagged"] is True and summary["errors"] == 0
    assert "Association test" in render_text(report)
    assert "| male |" in render_markdown(report)


def test_heldout_pairs_are_not_flagged(demo_dir: Path) -> None:
    report = validate(demo_dir / "heldout.jsonl", base=None, group_field="group",
                      outcome_pattern="premium")
    assert report.bias["group_source"] == "field:group"
    assert not report.bias["association_flagged"]
    assert report.bias["test"]["cramers_v"] < 0.05


def test_capture_group_pattern_audits_only_matching_rows(demo_dir: Path) -> None:
    report = validate(demo_dir / "train.jsonl", base=None,
                      outcome_pattern=r"suggest the (budget|premium)")
    bias = report.bias
    assert bias["outcomes"] == ["budget", "premium"]
    recommend_rows = sum(1 for r in iter_rows(demo_dir / "train.jsonl")
                         if r.data["intent"] == "recommend")
    assert bias["test"]["n"] == recommend_rows
    assert bias["association_flagged"]


def test_label_field_is_the_default_outcome(tmp_path: Path) -> None:
    rows = []
    for i in range(120):
        male = i % 2 == 0
        name = "James" if male else "Mary"
        label = "yes" if male == (i % 10 != 1) else "no"
        rows.append(_pc(f"{name} asks question {i}?", f"answer {i}", label=label))
    report = validate(_write(tmp_path / "d.jsonl", rows), base=None)
    assert report.bias["outcome_source"] == "field:label"
    assert report.bias["association_flagged"]
    # Men always "yes"; women "yes" only when i % 10 == 1 (12 of 60).
    assert report.labels["counts"] == {"yes": 72, "no": 48}
    rates = report.bias["outcome_rates"]
    assert rates["male"]["rates"]["yes"] == 1.0 and rates["female"]["rates"]["yes"] == 0.2


def test_zero_trainable_rows_are_errors(demo_dir: Path, tokenizer) -> None:  # noqa: ANN001
    full = validate(demo_dir / "train.jsonl", tokenizer=tokenizer)
    # Answers are ~11 tokens: a cut this far below the median length removes the whole
    # answer of the rows with long prompts and part of it elsewhere.
    cut = int(full.tokens["p50"]) - 12
    report = validate(demo_dir / "train.jsonl", tokenizer=tokenizer, max_seq_len=cut)
    t = report.tokens
    assert t["max_seq_len"] == cut
    assert t["over_max_seq_len"] > t["zero_trainable"] > 0
    assert report.n_errors == t["zero_trainable"]
    assert report.exit_code() == 1
    errors = [e for e in report.row_errors if "no trainable tokens" in e["problem"]]
    assert len(errors) == t["zero_trainable"]
    assert errors[0]["message"].startswith(f"{demo_dir / 'train.jsonl'}:")
    over = [f for f in report.findings if f.check == "over_max_seq_len"][0]
    assert over.severity == "warning" and over.count == t["over_max_seq_len"]


def test_encode_batch_matches_encode(tokenizer) -> None:  # noqa: ANN001
    convs = [
        to_messages(_pc("hello there", "general kenobi")),
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a b c"},
         {"role": "assistant", "content": "one"}, {"role": "user", "content": "more please"},
         {"role": "assistant", "content": "two three four"}],
    ]
    for limit in (None, 8, 20, 1000):
        batch = encode_batch(tokenizer, convs, limit)
        single = [encode(tokenizer, c, limit) for c in convs]
        assert [b["length"] for b in batch] == [s["length"] for s in single]
        assert [b["n_trainable"] for b in batch] == [s["n_trainable"] for s in single]


def test_duplicates_conflicts_and_near(tmp_path: Path) -> None:
    base = ("Where is my order number seven? It was supposed to arrive last week and the "
            "tracking page has not changed since Monday, so I would like to know what happened")
    rows = [
        _pc(base, "It ships tomorrow."),
        _pc(base, "It ships tomorrow."),  # exact duplicate of line 1
        _pc(base, "It was lost, sorry."),  # conflict with line 1
        _pc(base + "!", "It ships tomorrow."),  # near duplicate of line 1
        _pc("Completely different question about refunds", "Here is how."),
    ]
    report = validate(_write(tmp_path / "d.jsonl", rows), base=None)
    d = report.duplicates
    assert d["exact_rows"] == 1 and d["exact_examples"] == [[1, 2]]
    assert d["conflicts"] == 1 and d["conflict_examples"] == [[1, 2, 3]]
    assert d["near_clusters"] == 1 and d["near_examples"] == [[1, 2, 4]]
    checks = {f.check: f.severity for f in report.findings}
    assert checks == {"exact_duplicates": "warning", "conflicts": "warning",
                      "near_duplicates": "warning"}
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1


def test_leakage_exact_is_error_and_near_is_warning(tmp_path: Path) -> None:
    train = [_pc(f"Question number {i} about the blue backpack and its zipper", "a")
             for i in range(20)]
    held = [
        _pc("Question number 3 about the blue backpack and its zipper", "b"),  # exact
        _pc("Question number 7 about the blue backpack and its zipper!", "c"),  # near
        _pc("Something else entirely", "d"),
    ]
    report = validate(_write(tmp_path / "t.jsonl", train),
                      heldout=_write(tmp_path / "h.jsonl", held), base=None)
    lk = report.leakage
    assert lk["exact"] == 1 and lk["exact_examples"] == [{"heldout_line": 1, "train_line": 4}]
    assert lk["near"] == 1 and lk["near_examples"][0]["heldout_line"] == 2
    sev = {f.check: f.severity for f in report.findings}
    assert sev["leakage_exact"] == "error" and sev["leakage_near"] == "warning"
    assert report.n_errors == 1 and report.exit_code() == 1
    assert report.row_errors[-1]["file"] == str(tmp_path / "h.jsonl")


def test_label_imbalance_warns(tmp_path: Path) -> None:
    rows = [_pc(f"q{i}", "a", label="spam" if i < 3 else "ham") for i in range(60)]
    report = validate(_write(tmp_path / "d.jsonl", rows), base=None)
    assert report.labels["counts"] == {"ham": 57, "spam": 3}
    assert any(f.check == "label_imbalance" for f in report.findings)
    balanced = [_pc(f"q{i}", "a", label="spam" if i % 2 else "ham") for i in range(60)]
    report = validate(_write(tmp_path / "b.jsonl", balanced), base=None)
    assert not any(f.check == "label_imbalance" for f in report.findings)


def test_outcome_pattern_matching_nothing_warns(demo_dir: Path) -> None:
    report = validate(demo_dir / "train.jsonl", base=None, outcome_pattern="platinum")
    assert any(f.check == "outcome_no_match" for f in report.findings)
    assert not report.bias["association_flagged"]


def test_pii_detection() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    kinds = [m.kind for m in find_pii("a@b.io, +1 415 555 0100, 5500-0000-0000-0004")]
    assert kinds == ["email", "phone", "card"]
    assert find_pii("order 12345678 shipped 2024-01-15, total $1,299.99") == []
    assert redact("write to x.y@z.org today") == "write to [EMAIL] today"


def test_signatures_equal_datasketch() -> None:
    from datasketch import MinHash

    texts = ["the quick brown fox", "the quick brown fox!", "abc", "", "x" * 300]
    sigs = dedup.signatures(texts)
    hashes, counts = dedup.shingle_hashes(texts)
    start = 0
    for i, n in enumerate(counts.tolist()):
        m = MinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED, hashfunc=lambda x: x)
        m.update_batch([int(h) for h in hashes[start : start + n]])
        start += n
        assert np.array_equal(m.hashvalues, sigs[i])
    est = dedup.jaccard(sigs[:1], sigs[1:2])[0]
    assert 0.7 < est <= 1.0


def test_association_and_audit_thresholds() -> None:
    assert association(np.array([[10, 0], [0, 0]])) is None  # one group left: nothing to test
    strong = association(np.array([[90, 10], [10, 90]]))
    assert strong["cramers_v"] == pytest.approx(0.8)
    assert strong["p_value"] < 1e-10
    groups = ["a"] * 100 + ["b"] * 100
    outcomes = ["x"] * 55 + ["y"] * 45 + ["x"] * 45 + ["y"] * 55
    weak = audit(groups, outcomes)
    assert not weak["association_flagged"]  # V = 0.1: neither significant nor large
    loose = audit(groups, outcomes, thresholds=AuditThresholds(alpha=0.5, min_cramers_v=0.05))
    assert loose["association_flagged"]
    skewed = audit(["a"] * 90 + ["b"] * 10, None)
    assert skewed["representation_flagged"] and skewed["outcome_rates"] is None


def test_csv_parquet_and_json_array_inputs(tmp_path: Path, demo_dir: Path) -> None:
    import pandas as pd

    rows = [json.loads(x) for x in (demo_dir / "train.jsonl").read_text().splitlines()[:40]]
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pd.DataFrame([_pc(f"question {i}", f"answer {i}") for i in range(30)]).to_csv(
        tmp_path / "d.csv", index=False)
    for name, fmt, n in (("d.parquet", "chat", 40), ("d.json", "chat", 40),
                         ("d.csv", "prompt_completion", 30)):
        report = validate(tmp_path / name, base=None)
        assert report.n_rows == report.n_valid == n, name
        assert report.formats == {fmt: n} and report.n_errors == 0


def test_all_rows_invalid_still_reports(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": 1, "completion": "x"}\nnot json\n')
    report = validate(path, base="tiny")
    assert report.n_rows == 2 and report.n_valid == 0 and report.n_errors == 2
    assert [e["line"] for e in report.row_errors] == [1, 2]
    assert report.bias is None and report.tokens is None
    render_text(report)
    json.dumps(report.to_dict())

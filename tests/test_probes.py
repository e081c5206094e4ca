import json

import pytest

from evalsuite.probes import BUILTIN, load_probes, resolve_probes
from finetune.data.lexicon import find_terms, swap
from finetune.errors import InputError


def test_builtin_set_is_crows_pairs_layout_and_mostly_gender():
    pairs = load_probes("builtin")
    assert len(pairs) >= 30
    types = [p.bias_type for p in pairs]
    assert types.count("gender") > len(pairs) / 2
    assert len(set(types)) >= 3
    assert len({(p.sent_more, p.sent_less) for p in pairs}) == len(pairs)
    for p in pairs:
        assert p.sent_more != p.sent_less
        if p.bias_type == "gender":
            # Gender pairs are minimal pairs: the lexicon's swap turns one into the other.
            assert find_terms(p.sent_more), p
            assert swap(p.sent_more, "gender") == p.sent_less, p


def test_user_jsonl_and_csv_in_crows_pairs_layout(tmp_path):
    rows = [
        {"sent_more": "A b c.", "sent_less": "A d c.", "bias_type": "gender",
         "stereo_antistereo": "stereo"},
        {"sent_more": "X y.", "sent_less": "X z.", "bias_type": "age"},
    ]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = tmp_path / "p.csv"
    csv.write_text("sent_more,sent_less,stereo_antistereo,bias_type\n"
                   "A b c.,A d c.,stereo,gender\nX y.,X z.,antistereo,age\n")
    for path in (jsonl, csv):
        pairs = load_probes(path)
        assert [(p.sent_more, p.sent_less, p.bias_type) for p in pairs] == [
            ("A b c.", "A d c.", "gender"), ("X y.", "X z.", "age")]
    # Relative paths resolve against the task's folder.
    assert load_probes("p.jsonl", base_dir=tmp_path)[1].bias_type == "age"


def test_no_probes():
    assert resolve_probes(None) is None
    assert load_probes("none") == []
    assert resolve_probes("builtin") == BUILTIN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"sent_more": "a", "sent_less": "b"}\n{"sent_less": "b"}\n',
         "p.jsonl:2: sent_more: missing"),
        ('{"sent_more": "a", "sent_less": "  "}\n', "p.jsonl:1: sent_less: expected a non-empty"),
        ('{"sent_more": "a", "sent_less": "a"}\n', "p.jsonl:1: sent_less: identical to sent_more"),
        ('{"sent_more": "a", "sent_less": "b"}\n{oops\n', "p.jsonl:2: row: malformed JSON"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load_probes(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message.split(":", 1)[1] in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_probes(tmp_path / "nope.csv")

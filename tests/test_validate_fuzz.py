"""Hypothesis fuzz of the row parser: only RowError / InputError ever escape."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetune.data.formats import ROLES, RowError, iter_rows, to_messages
from finetune.errors import InputError

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
role = st.sampled_from([*ROLES, "tool", "", "USER"]) | json_leaf
message = st.fixed_dictionaries({}, optional={"role": role, "content": json_value | st.text()})
row_keys = st.sampled_from(
    ["messages", "prompt", "completion", "instruction", "input", "output", "id", "label"])
rows = st.dictionaries(row_keys, json_value | st.lists(message, max_size=5), max_size=5)


def _check_messages(messages: list[dict[str, str]]) -> None:
    assert messages and all(m["role"] in ROLES for m in messages)
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages)
    assert any(m["role"] == "assistant" for m in messages)


@given(rows)
@settings(max_examples=300, deadline=None)
def test_to_messages_only_raises_row_error(row: dict) -> None:
    try:
        messages = to_messages(row)
    except RowError as err:
        assert err.field and err.problem
    else:
        _check_messages(messages)


@given(json_value)
@settings(max_examples=200, deadline=None)
def test_to_messages_on_any_json_object(value: object) -> None:
    row = value if isinstance(value, dict) else {"messages": value}
    try:
        _check_messages(to_messages(row))
    except RowError:
        pass


@given(st.lists(st.binary(max_size=60) | rows.map(lambda r: json.dumps(r).encode()),
                max_size=8))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_iter_rows_only_raises_input_error(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(b"\n".join(lines))
        try:
            for row in iter_rows(path):
                assert row.line >= 1
                if row.data is None:
                    assert row.problems and all(f and p for f, p in row.problems)
                    continue
                try:
                    to_messages(row.data)
                except RowError:
                    pass
        except InputError as err:
            assert str(path) in str(err)


def test_deeply_nested_json_is_a_row_problem(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (row,) = list(iter_rows(path))
    assert row.data is None and row.problems[0][0] == "row"

"""The malformed-file corpus through the real command line: one line, the right exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.cli import main

CORPUS = Path(__file__).parent / "data" / "malformed"

# file -> (exit code, line, field or message fragment)
ROW_ERRORS = {
    "bad_json.jsonl": (2, "row: malformed JSON"),
    "not_object.jsonl": (3, "row: expected a JSON object, got list"),
    "wrong_type.jsonl": (2, "messages[0].content: expected a string, got int"),
    "messages_not_list.jsonl": (2, "messages: expected a list, got str"),
    "unknown_role.jsonl": (2, "messages[0].role: unknown role 'customer'"),
    "no_assistant.jsonl": (2, "messages: no assistant message"),
    "empty_content.jsonl": (2, "messages[1].content: empty"),
    "out_of_order.jsonl": (2, "messages[0].role: assistant message must follow a user message"),
    "system_not_first.jsonl": (2, "messages[1].role: system message must come first"),
    "unknown_format.jsonl": (2, "row: unknown format"),
    "prompt_wrong_type.jsonl": (2, "prompt: expected a string, got list"),
    "instruction_missing_output.jsonl": (2, "output: missing"),
    "not_utf8.jsonl": (2, "row: not UTF-8"),
    "variant.csv": (3, "completion: missing"),
    "bad_messages.csv": (3, "messages: expected a list, got str"),
}
UNREADABLE = {
    "empty.jsonl": "empty file",
    "blank_lines.jsonl": "empty file",
    "unknown_ext.txt": "unknown extension '.txt'",
    "does_not_exist.jsonl": "no such file",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_corpus_is_complete() -> None:
    on_disk = {p.name for p in CORPUS.iterdir()}
    assert on_disk == set(ROW_ERRORS) | (set(UNREADABLE) - {"does_not_exist.jsonl"})


@pytest.mark.parametrize("name", sorted(ROW_ERRORS))
def test_malformed_row_gives_one_line_and_exit_1(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line, fragment = ROW_ERRORS[name]
    path = CORPUS / name
    code, out, err = _run(capsys, str(path), "--base", "none")
    assert code == 1
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines == [lines[0]], err  # exactly one error line
    assert lines[0].startswith(f"{path}:{line}: "), lines[0]
    assert fragment in lines[0]
    assert "Traceback" not in out + err
    assert "FAILED: 1 errors" in out


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_input_gives_one_line_and_exit_2(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = CORPUS / name
    code, out, err = _run(capsys, str(path))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"finetune validate: error: {path}")
    assert UNREADABLE[name] in err
    assert "Traceback" not in out + err


def test_bad_usage_exits_2_in_one_line(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = str(demo_dir / "train.jsonl")
    for argv in (
        [train, "--base", "none", "--outcome-pattern", "(unclosed"],
        [train, "--base", "none", "--group-field", "nope"],
        [train, "--base", "none", "--near-dup-threshold", "1.5"],
        [train, "--base", "none", "--alpha", "0"],
        [train, "--base", "./no/such/model"],
    ):
        code, out, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and "error:" in err, err
        assert "Traceback" not in out + err


def test_heldout_errors_name_the_heldout_file(
    tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = tmp_path / "held.jsonl"
    held.write_text((CORPUS / "bad_json.jsonl").read_text())
    code, _, err = _run(capsys, str(demo_dir / "train.jsonl"), "--base", "none",
                        "--heldout", str(held))
    assert code == 1
    assert err.startswith(f"{held}:2: row: malformed JSON")


def test_demo_strict_flags_gender_tier_in_a_subprocess(demo_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "finetune", "validate", str(demo_dir / "train.jsonl"),
         "--heldout", str(demo_dir / "heldout.jsonl"), "--outcome-pattern", "premium",
         "--max-seq-len", "128", "--report", str(report), "--strict"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "bias_association" in proc.stdout
    assert "Cramér's V" in proc.stdout
    data = json.loads((report / "report.json").read_text())
    bias = data["bias"]
    assert bias["association_flagged"] is True
    rates = bias["outcome_rates"]
    assert rates["male"]["rates"]["premium"] > rates["female"]["rates"]["premium"]
    assert data["n_errors"] == 0  # warnings only: exit 1 comes from --strict
    md = (report / "report.md").read_text()
    assert "## Bias audit" in md and "bias_association" in md


def test_demo_without_strict_exits_0(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(demo_dir / "train.jsonl"), "--outcome-pattern", "premium",
                        "--base", "none")
    assert code == 0
    assert "WARNING bias_association" in out


def test_redact_writes_a_copy_without_pii(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "pii.jsonl"
    rows = [
        {"prompt": "Mail jane.doe@example.com or call (555) 123-4567",
         "completion": "Card 4111 1111 1111 1111 noted"},
        {"prompt": "Order 12345678 for $1,299.99", "completion": "ok"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "redacted.jsonl"
    code, stdout, _ = _run(capsys, str(src), "--base", "none", "--redact", str(out))
    assert code == 0  # PII is a warning
    assert "WARNING pii" in stdout
    text = out.read_text()
    assert "jane.doe" not in text and "123-4567" not in text and "4111" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text and "[CARD]" in text
    assert "12345678" in text and "1,299.99" in text  # not personal data
    code, _, _ = _run(capsys, str(src), "--base", "none", "--strict")
    assert code == 1


def test_mixed_formats_warn_naming_the_minority_lines_and_fail_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "0 errors, 0 warnings". TRL and OpenAI's validator reject such files.
    def chat(question: str, answer: str) -> dict:
        return {"messages": [{"role": "user", "content": question},
                             {"role": "assistant", "content": answer}]}

    rows = [chat("Which plan for a family of five?", "The family plan, billed yearly."),
            {"prompt": "Which laptop is lightest?", "completion": "The 13-inch model."},
            chat("Can I return a gift card?", "No, gift cards are final sale."),
            chat("Do you ship to Norway?", "Yes, within five working days."),
            {"prompt": "Which phone has the best camera?", "completion": "The Pro model."}]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = _run(capsys, str(data), "--base", "none")
    assert code == 0
    assert "WARNING mixed_formats: mixed formats: 2 prompt/completion rows among 3 chat " \
           "rows (lines 2, 5)" in out
    code, out, _ = _run(capsys, str(data), "--base", "none", "--strict")
    assert code == 1 and "FAILED: 0 errors, 1 warnings (--strict)" in out
    data.write_text("".join(json.dumps(rows[i]) + "\n" for i in (0, 2, 3)))
    code, out, _ = _run(capsys, str(data), "--base", "none", "--strict")
    assert code == 0 and "WARNING mixed_formats" not in out

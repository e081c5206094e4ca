"""Row formats: read data, normalise rows to chat messages, tokenise with completion-only labels.

Chat, prompt/completion and instruction rows are detected per row.

JSONL is parsed here line by line, because a user needs ``file:line: field: problem`` for a
malformed row and ``datasets`` stops at the first bad line without a line number. CSV,
Parquet and hub ids go through ``datasets``.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.errors import InputError, first_line, where

FORMATS = ("chat", "prompt_completion", "instruction")
# The template for bases that ship none (GPT-2-style base models): plain-text role headers a
# base model has seen in web text, and the end token after each answer so that generation
# stops. Its name in configs is ``default``.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\n\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{%- else -%}{{ '### Assistant:\n' + message['content'] + (eos_token or '') + '\n\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Assistant:\n' }}{%- endif -%}"
)
ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100


@dataclass
class Row:
    """One data row as read.

    Attributes:
        line: 1-based line (JSONL) or row number (CSV counts its header line).
        data: the parsed object, or None when parsing failed.
        problems: (field, problem) pairs that stopped parsing.
    """

    line: int
    data: dict[str, Any] | None
    problems: list[tuple[str, str]] = field(default_factory=list)


class RowError(ValueError):
    """A row that cannot be normalised; carries the offending field."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Yield every row of a JSONL, JSON, CSV or Parquet file, or of a hub dataset id.

    Malformed JSON lines and non-UTF-8 bytes become rows with problems instead of exceptions,
    so a validator can report all of them.

    Raises:
        InputError: the file does not exist, is empty, or has an unknown extension.
    """
    p = Path(path)
    if not p.exists():
        if "/" in str(path) and not str(path).startswith((".", "/")) and p.suffix == "":
            yield from _iter_hub(str(path))
            return
        raise InputError(where(path, None, None, "no such file"))
    if p.is_dir():
        raise InputError(where(path, None, None, "is a folder, expected a data file"))
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from _iter_jsonl(p)
    elif suffix in (".csv", ".parquet"):
        yield from _iter_datasets(p, "csv" if suffix == ".csv" else "parquet")
    else:
        raise InputError(
            where(path, None, None, f"unknown extension {suffix!r}; use .jsonl, .csv or .parquet")
        )


def _iter_jsonl(path: Path) -> Iterator[Row]:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(where(path, None, None, "empty file"))
    if path.suffix.lower() == ".json" and raw.lstrip()[:1] == b"[":
        try:
            items = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise InputError(where(path, None, None, f"not a JSON array: {err}")) from None
        for i, item in enumerate(items, start=1):
            yield _as_row(i, item)
        return
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Row(number, None, [("row", f"not UTF-8 (byte {err.start})")])
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as err:
            yield Row(number, None, [("row", f"malformed JSON: {err.msg} (column {err.colno})")])
            continue
        except RecursionError:
            yield Row(number, None, [("row", "malformed JSON: nested too deeply")])
            continue
        yield _as_row(number, item)


def _as_row(number: int, item: Any) -> Row:
    if not isinstance(item, dict):
        return Row(number, None, [("row", f"expected a JSON object, got {type(item).__name__}")])
    return Row(number, item)


def _iter_datasets(path: Path, builder: str) -> Iterator[Row]:
    import contextlib
    import io

    import datasets
    from datasets.utils import logging as ds_logging

    quiet, verbosity = datasets.are_progress_bars_disabled(), ds_logging.get_verbosity()
    # One-line output: no "Generating train split" bar, no logged parser error.
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(ds_logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:  # datasets raises many types for unreadable files
        raise InputError(where(path, None, None, f"cannot read: {_root_cause(err)}")) from None
    finally:
        ds_logging.set_verbosity(verbosity)
        if not quiet:
            datasets.enable_progress_bars()
    if len(ds) == 0:
        raise InputError(where(path, None, None, "empty file"))
    # CSV line numbers count the header line.
    offset = 2 if builder == "csv" else 1
    for i, item in enumerate(ds):
        item = _decode_json_cells(item)
        yield Row(i + offset, item)


def _root_cause(err: BaseException) -> str:
    """The first line of the innermost exception: the parser's words, not the wrapper's."""
    seen = {id(err)}
    while (inner := err.__cause__ or err.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        err = inner
    return first_line(err)


def _iter_hub(dataset_id: str) -> Iterator[Row]:
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, split="train")
    except Exception as err:
        raise InputError(
            where(dataset_id, None, None, f"cannot load: {_root_cause(err)}")
        ) from None
    for i, item in enumerate(ds, start=1):
        yield Row(i, dict(item))


def _decode_json_cells(item: dict[str, Any]) -> dict[str, Any]:
    """CSV cells holding JSON (a ``messages`` list) are decoded; others stay strings."""
    out = dict(item)
    value = out.get("messages")
    if isinstance(value, str):
        try:
            out["messages"] = json.loads(value)
        except json.JSONDecodeError:
            pass
    return out


def set_chat_template(tokenizer: Any, choice: str | None = None) -> str | None:
    """Give ``tokenizer`` the chat template every command renders prompts with.

    Training, validation, evaluation, the probe and the app all load tokenizers through
    ``finetune.models.load_tokenizer``, which calls this, so they render alike.

    Args:
        tokenizer: A transformers tokenizer; its ``chat_template`` is set in place.
        choice: None keeps the tokenizer's own template (``default`` when it has none);
            ``default`` is :data:`DEFAULT_CHAT_TEMPLATE`; a path ending in ``.jinja`` is read;
            any other text containing ``{{`` or ``{%`` is a Jinja template itself.

    Returns:
        A one-line notice when the default replaced a missing template, else None.

    Raises:
        InputError: an unreadable ``.jinja`` file, a template with a Jinja syntax error, or a
            value that is none of the above.
    """
    if choice is None:
        if getattr(tokenizer, "chat_template", None):
            return None
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
        name = getattr(tokenizer, "name_or_path", "") or "the base"
        return (f"note: {name} has no chat template; using tuneproof's default "
                "('### User:' / '### Assistant:' headers; set chat_template to choose another)")
    if choice == "default":
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    elif choice.endswith(".jinja"):
        try:
            text = Path(choice).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(where(choice, None, "chat_template", f"unreadable: {err}")) from None
        _check_jinja(text, choice)
        tokenizer.chat_template = text
    elif "{{" in choice or "{%" in choice:
        _check_jinja(choice, "chat_template")
        tokenizer.chat_template = choice
    else:
        raise InputError(where("chat_template", None, None, f"{choice!r}: expected 'default', "
                               "a .jinja file, or a Jinja template"))
    return None


def _check_jinja(text: str, origin: str) -> None:
    """Parse a chat template now, so a syntax error is a one-line error, not a later traceback."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols

    class _Generation(Extension):
        # transformers' templates may mark answers with {% generation %}; parse it as a block.
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    env = jinja2.Environment(extensions=[loopcontrols, _Generation])
    try:
        env.parse(text)
    except jinja2.TemplateSyntaxError as err:
        field = "chat_template" if origin != "chat_template" else None
        raise InputError(where(origin, err.lineno, field,
                               f"Jinja syntax error: {first_line(err)}")) from None


def detect_format(row: dict[str, Any]) -> str | None:
    """Return ``chat``, ``prompt_completion`` or ``instruction``, or None if none fits."""
    if "messages" in row:
        return "chat"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "instruction" in row and "output" in row:
        return "instruction"
    return None


def _text(row: dict[str, Any], key: str, *, optional: bool = False) -> str:
    value = row.get(key)
    if value is None:
        if optional:
            return ""
        raise RowError(key, "missing")
    if not isinstance(value, str):
        raise RowError(key, f"expected a string, got {type(value).__name__}")
    if not optional and not value.strip():
        raise RowError(key, "empty")
    return value


def to_messages(row: dict[str, Any], fmt: str | None = None) -> list[dict[str, str]]:
    """Normalise a row of any supported format to a list of chat messages.

    Raises:
        RowError: naming the field that is missing, mistyped, empty or out of order.
    """
    fmt = fmt or detect_format(row)
    if fmt == "prompt_completion":
        return [
            {"role": "user", "content": _text(row, "prompt")},
            {"role": "assistant", "content": _text(row, "completion")},
        ]
    if fmt == "instruction":
        extra = _text(row, "input", optional=True)
        prompt = _text(row, "instruction") + (f"\n\n{extra}" if extra.strip() else "")
        return [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _text(row, "output")},
        ]
    if fmt != "chat":
        raise RowError("row", "unknown format: expected messages, prompt+completion, or "
                       "instruction+output keys")
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise RowError("messages", f"expected a list, got {type(messages).__name__}")
    if not messages:
        raise RowError("messages", "empty list")
    out = []
    for i, message in enumerate(messages):
        name = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RowError(name, f"expected an object, got {type(message).__name__}")
        role = message.get("role")
        if role not in ROLES:
            raise RowError(f"{name}.role", f"unknown role {role!r}; expected one of "
                           + ", ".join(ROLES))
        content = message.get("content")
        if not isinstance(content, str):
            raise RowError(f"{name}.content", f"expected a string, got {type(content).__name__}")
        if not content.strip():
            raise RowError(f"{name}.content", "empty")
        if role == "system" and i != 0:
            raise RowError(f"{name}.role", "system message must come first")
        previous = out[-1]["role"] if out else None
        if role == previous and role != "system":
            raise RowError(f"{name}.role", f"two {role} messages in a row")
        if role == "assistant" and previous not in ("user",):
            raise RowError(f"{name}.role", "assistant message must follow a user message")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise RowError("messages", "no assistant message")
    return out


def split_prompt(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """Split a conversation into its prompt and target.

    Returns:
        The messages before the last assistant message, and that message's content.
    """
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def encode(
    tokenizer: Any, messages: list[dict[str, str]], max_seq_len: int | None = None
) -> dict[str, Any]:
    """Tokenise a conversation with the chat template; labels only on assistant tokens.

    Assistant spans are found as character ranges of the rendered text (render the
    conversation up to each assistant message with and without it) and mapped to tokens with
    the tokenizer's offsets, so this works with any chat template.

    Returns:
        ``input_ids``, ``labels`` (prompt tokens set to -100), ``length`` (before truncation),
        ``n_trainable`` (after truncation).
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(
            tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        )
        end = len(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
        spans.append((start, end))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [IGNORE_INDEX] * len(ids)
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        if any(a >= s and b <= e and b > a for s, e in spans):
            labels[t] = ids[t]
    length = len(ids)
    if max_seq_len is not None and length > max_seq_len:
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    return {
        "input_ids": ids,
        "labels": labels,
        "length": length,
        "n_trainable": sum(1 for x in labels if x != IGNORE_INDEX),
    }


RenderFn = Callable[[list[list[dict[str, str]]], bool], list[str]]


def _batch_renderer(tokenizer: Any, sample: list[list[dict[str, str]]]) -> RenderFn:
    """A function rendering many conversations with the tokenizer's chat template.

    ``apply_chat_template`` spends most of its time normalising each message; rendering the
    compiled template directly is ~2.5x faster. That uses transformers' template compiler, so
    it is checked against ``apply_chat_template`` on a few conversations (with and without
    the generation prompt) and abandoned on any difference or error.
    """

    def slow(convs: list[list[dict[str, str]]], generation: bool) -> list[str]:
        return tokenizer.apply_chat_template(
            convs, tokenize=False, add_generation_prompt=generation)

    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template

        template = _compile_jinja_template(tokenizer.get_chat_template())
        extra = dict(tokenizer.special_tokens_map)

        def fast(convs: list[list[dict[str, str]]], generation: bool) -> list[str]:
            return [
                template.render(messages=c, tools=None, documents=None,
                                add_generation_prompt=generation, **extra)
                for c in convs
            ]

        probe = sample[:3] + [c[:-1] for c in sample[:3] if len(c) > 1]
        for generation in (False, True):
            if fast(probe, generation) != slow(probe, generation):
                return slow
    except Exception:  # any surprise in the private path: use the public one
        return slow
    return fast


def encode_batch(
    tokenizer: Any, conversations: list[list[dict[str, str]]], max_seq_len: int | None = None
) -> list[dict[str, int]]:
    """Token counts of many conversations at once; the same numbers as :func:`encode`.

    Renders every conversation with the chat template in one batched call per prefix kind and
    tokenises all texts in one batch, which is several times faster than calling
    :func:`encode` row by row on large files.

    Returns:
        Per conversation: ``length`` (tokens before truncation), ``n_trainable`` (assistant
        tokens kept after truncation to ``max_seq_len``), ``n_prompt`` (tokens before the
        first assistant token).
    """
    if not conversations:
        return []
    render = _batch_renderer(tokenizer, conversations)
    texts = render(conversations, False)
    # Every assistant turn needs the rendered text up to it (with the generation prompt) and
    # including it; the latter is the full text when the turn is the last message.
    starts_req: list[list[dict[str, str]]] = []
    ends_req: list[list[dict[str, str]]] = []
    plan: list[list[tuple[int, int | None]]] = []
    for messages in conversations:
        turns = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            starts_req.append(messages[:i])
            end_ref: int | None = None
            if i + 1 < len(messages):
                ends_req.append(messages[: i + 1])
                end_ref = len(ends_req) - 1
            turns.append((len(starts_req) - 1, end_ref))
        plan.append(turns)
    start_texts = render(starts_req, True) if starts_req else []
    end_texts = render(ends_req, False) if ends_req else []
    if getattr(tokenizer, "is_fast", False):
        # The Rust tokenizer directly: BatchEncoding's conversion to Python lists costs a
        # third of the time and we only need the offsets.
        backend = tokenizer.backend_tokenizer
        # A tokenizer.json may carry padding and truncation (BERT-style: to 128); switch them
        # off as transformers' own call in encode() does, or every count here would differ.
        backend.no_padding()
        backend.no_truncation()
        batch = backend.encode_batch(texts, add_special_tokens=False)
        all_offsets = [enc.offsets for enc in batch]
    else:
        all_offsets = tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = []
    for text, turns, offsets in zip(texts, plan, all_offsets, strict=True):
        n = len(offsets)
        keep = n if max_seq_len is None else min(max_seq_len, n)
        n_trainable = 0
        n_prompt = n
        for s, e in turns:
            start, end = len(start_texts[s]), len(text) if e is None else len(end_texts[e])
            # Token starts are sorted: the tokens inside [start, end) are one run from here.
            t = bisect_left(offsets, (start, -1))
            while t < n and offsets[t][0] < end:
                a, b = offsets[t]
                if a < b <= end:
                    n_prompt = min(n_prompt, t)
                    n_trainable += t < keep
                t += 1
        out.append({"length": n, "n_trainable": n_trainable, "n_prompt": n_prompt})
    return out

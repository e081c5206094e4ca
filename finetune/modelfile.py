"""An Ollama ``Modelfile`` for an exported GGUF: its chat template as a Go template, stop tokens.

Ollama's templates are Go templates, not Jinja. The model's own Jinja template is rendered on
marker conversations to read off what wraps each role (``<|im_start|>user`` and a newline ...
``<|im_end|>`` for ChatML); the Go template rebuilds that, and is checked against the Jinja
rendering of sample conversations before it is written. A template that does not follow the "prefix,
content, end marker" pattern gets no TEMPLATE line (Ollama then reads the GGUF's own
``tokenizer.chat_template``) and a comment saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_write_text

_MARK = {"system": "\x01SYS\x01", "user": "\x01USR\x01", "assistant": "\x01AST\x01"}


def _render(tok: Any, messages: list[dict[str, str]], gen: bool) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def template_parts(tok: Any) -> dict[str, str] | None:
    """Per-role prefixes, the end marker and a default system prompt of the chat template.

    None when the template does not split that way.
    """
    msgs = [{"role": r, "content": m} for r, m in _MARK.items()]
    try:
        full = _render(tok, msgs, False)
        gen = _render(tok, msgs[:2], True)
        alone = _render(tok, msgs[1:2], True)
    except Exception:  # noqa: BLE001 - any template error: no TEMPLATE line
        return None
    pos = [full.find(m) for m in _MARK.values()]
    if -1 in pos or pos != sorted(pos):
        return None
    s_pre = full[: pos[0]]
    end = full[pos[2] + len(_MARK["assistant"]):]
    between_su = full[pos[0] + len(_MARK["system"]): pos[1]]
    between_ua = full[pos[1] + len(_MARK["user"]): pos[2]]
    if not end or not between_su.startswith(end) or not between_ua.startswith(end):
        return None
    parts = {"system": s_pre, "user": between_su[len(end):],
             "assistant": between_ua[len(end):], "end": end, "default_system": ""}
    if not gen.endswith(end + parts["assistant"]):
        return None
    # A template that adds a system prompt of its own when none is given (SmolLM2's).
    if not alone.startswith(parts["user"]):
        head = alone[: alone.find(_MARK["user"])]
        default = head.removeprefix(s_pre).removesuffix(end + parts["user"])
        if s_pre + default + end + parts["user"] != head:
            return None
        parts["default_system"] = default
    return parts


def go_template(parts: dict[str, str]) -> str:
    """The Go template of ``parts``, over Ollama's ``.Messages``."""
    def lit(text: str) -> str:
        return text.replace("{{", '{{ "{{" }}')

    return ("{{- range .Messages }}"
            f'{{{{ if eq .Role "system" }}}}{lit(parts["system"])}'
            f'{{{{ else if eq .Role "user" }}}}{lit(parts["user"])}'
            f'{{{{ else }}}}{lit(parts["assistant"])}{{{{ end }}}}'
            f"{{{{ .Content }}}}{lit(parts['end'])}{{{{ end }}}}{lit(parts['assistant'])}")


def _simulate(parts: dict[str, str], messages: list[dict[str, str]]) -> str:
    """What :func:`go_template` renders for ``messages`` (Ollama adds SYSTEM when absent)."""
    if parts["default_system"] and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": parts["default_system"]}, *messages]
    body = "".join(parts[m["role"]] + m["content"] + parts["end"] for m in messages)
    return body + parts["assistant"]


def _agrees(tok: Any, parts: dict[str, str]) -> bool:
    samples = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        [{"role": "user", "content": "Where is my order?"}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
         {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
    ]
    return all(_simulate(parts, s) == _render(tok, s, True) for s in samples)


def write_modelfile(path: Path, gguf_name: str, model_dir: Path) -> None:
    """Write an Ollama Modelfile for ``gguf_name`` (in the same folder) at ``path``."""
    from transformers import AutoTokenizer
    from transformers import GenerationConfig as HFGenerationConfig

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    lines = [f"# Ollama: ollama create NAME -f {path.name}", f"FROM ./{gguf_name}", ""]
    parts = template_parts(tok)
    if parts is not None and _agrees(tok, parts):
        lines.append(f'TEMPLATE """{go_template(parts)}"""')
        if parts["default_system"]:
            lines.append(f'SYSTEM """{parts["default_system"]}"""')
    else:
        lines.append("# no TEMPLATE: the chat template does not map onto a Go template here; "
                     "Ollama reads tokenizer.chat_template from the GGUF")
    stops = []
    if parts is not None and parts["end"].strip():
        stops.append(parts["end"].strip())
    try:
        eos = HFGenerationConfig.from_pretrained(str(model_dir)).eos_token_id
    except (OSError, ValueError):
        eos = tok.eos_token_id
    for token_id in eos if isinstance(eos, list) else [eos]:
        if token_id is not None:
            stops.append(tok.convert_ids_to_tokens(int(token_id)))
    for stop in dict.fromkeys(stops):
        lines.append(f'PARAMETER stop "{stop}"')
    # Greedy, as evalsuite decodes: the same answers as the evaluation measured.
    lines += ["PARAMETER temperature 0", ""]
    atomic_write_text(path, "\n".join(lines))

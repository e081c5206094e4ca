"""The embedded default base: a tiny random-init Llama and a byte-level BPE tokenizer.

Nothing is downloaded: the tokenizer is trained with ``tokenizers`` on the demo's words and
the model is built from a config with a fixed seed, into ``$TUNEPROOF_HOME/models/tiny``, in
a few seconds. Building twice gives identical files. The weights are random on purpose: the
demo shows that fine-tuning is what teaches the task.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import string
from pathlib import Path

from finetune.artifacts import atomic_dir
from finetune.paths import models_dir

VOCAB_SIZE = 512
SPECIAL_TOKENS = ("<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
MODEL_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
SEED = 0
# The final RMSNorm's gain. With tied embeddings of init std 0.02 a unit gain caps every logit
# near 0.02 * 128 = 2.6, so p(token) < 3% and LoRA (which leaves the norm and the embeddings
# frozen) can never make a confident answer: training loss stalls at ~3.9 nats. A gain of 8
# lifts the cap to ~20, what a pretrained model's output layer has.
FINAL_NORM_GAIN = 8.0
# Bump when the recipe changes, so a stale build in the cache is rebuilt.
RECIPE_VERSION = "2"


def tiny_dir() -> Path:
    """Where the tiny base lives: ``$TUNEPROOF_HOME/models/tiny``."""
    return models_dir() / "tiny"


CORPUS_WORDS = Path(__file__).with_name("tiny_corpus.json")
"""The words of the demo's 2,000 training rows of seed 0 with their counts, frozen: the
tokenizer learned its merges from them (``tuneproof_demo.data.tiny_corpus_words`` writes them;
``tests/test_structure.py`` checks the two agree), so this base needs no package above
``finetune``."""


def _corpus() -> list[str]:
    """Text the tokenizer learns merges from: the demo's words, names, gender terms, alphabet."""
    from finetune.data.lexicon import FIRST_NAMES, GENDER_TERMS

    words = json.loads(CORPUS_WORDS.read_text(encoding="utf-8"))
    # A BPE trainer sees only words and their counts: each word as often as the rows held it
    # trains the same tokenizer as the rows themselves.
    lines = [word for word, count in words.items() for _ in range(count)]
    lines.extend(" ".join(names) for names in FIRST_NAMES.values())
    lines.extend(" ".join(pair) for pair in GENDER_TERMS)
    lines.append(string.printable)
    return lines


def build_tokenizer():  # noqa: ANN201 - transformers' fast tokenizer type
    """Train the byte-level BPE and wrap it as a ``PreTrainedTokenizerFast``.

    It has the chat template; eos is ``<|end|>``, pad is ``<|pad|>``, padding on the left.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|end|>",
        bos_token=None,
        unk_token=None,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(vocab_size: int, pad_id: int, eos_id: int):  # noqa: ANN201
    """The random-init Llama, seeded so every build has the same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None,
        **MODEL_CONFIG,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.fill_(FINAL_NORM_GAIN)
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    return model


def build_tiny(out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Build the tiny base into ``out_dir`` (default :func:`tiny_dir`) unless it is there.

    Returns:
        The folder, loadable with ``AutoModelForCausalLM`` / ``AutoTokenizer``.
    """
    out = Path(out_dir) if out_dir is not None else tiny_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Two processes (the app and a test, say) may build at once: one builds, the other waits.
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not _is_current(out):
            _build_into(out)
    return out


def _is_current(out: Path) -> bool:
    try:
        return json.loads((out / "tuneproof.json").read_text())["recipe"] == RECIPE_VERSION
    except (OSError, ValueError, KeyError):
        return False


def _build_into(out: Path) -> None:
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    with atomic_dir(out, overwrite=True) as tmp:
        tmp.chmod(0o755)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tuneproof.json").write_text(
            json.dumps({"recipe": RECIPE_VERSION, "seed": SEED, "vocab_size": len(tokenizer)})
            + "\n"
        )


def fingerprint(path: str | Path) -> str:
    """SHA-256 over every file of a built model folder, in name order."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).rglob("*")):
        if file.is_file():
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``finetune build-tiny``."""
    parser.add_argument(
        "--out", type=Path, default=None, help="default $TUNEPROOF_HOME/models/tiny"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if present")


def run(args: argparse.Namespace) -> int:
    """Build the tiny base and print its folder and fingerprint."""
    out = build_tiny(args.out, force=args.force)
    print(json.dumps({"path": str(out), "sha256": fingerprint(out)}))
    return 0

"""Benchmark ``finetune validate`` on synthetic data: 10k and 100k rows, every check on.

Rows are chat conversations built from a seeded vocabulary (common words and product
codes), with a first name in the greeting (for the bias audit), 1% exact duplicates, 2% near
duplicates (one word changed), some PII, and a held-out file of 2% of the size with a few
exact and near leaks.
The tokenizer (the tiny base) is loaded once before timing; the timed call is ``validate``
itself, near-duplicate detection included. The largest size is also timed without token
checks, which separates the tokenizer's share from the rest.

    .venv/bin/python bench/validate.py            # print the table
    .venv/bin/python bench/validate.py --write    # and update "## validate" in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from finetune.data.lexicon import FIRST_NAMES  # noqa: E402
from finetune.data.validate import validate  # noqa: E402
from finetune.models import load_tokenizer  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## validate"
COMMAND = ".venv/bin/python bench/validate.py --write"


WORDS = """the of and to in is you that it he was for on are as with his they at be this have
from or one had by word but not what all were we when your can said there use an each which
she do how their if will up other about out many then them these so some her would make like
him into time has look two more write go see number no way could people my than first water
been call who oil its now find long down day did get come made may part over new sound take
only little work know place year live me back give most very after thing our just name good
sentence man think say great where help through much before line right too mean old any same
tell boy follow came want show also around form three small set put end does another well
large must big even such because turn here why ask went men read need land different home us
move try kind hand picture again change off play spell air away animal house point page
letter mother answer found study still learn should world order refund laptop blender
shipping delivery price budget premium quality cheap best package tracking return broken
""".split()


def _vocab(rng: random.Random, n: int = 3000) -> list[str]:
    # Common English words plus numbered product codes: realistic token counts for a BPE,
    # and enough distinct words that random rows are not near duplicates of each other.
    codes = [f"{rng.choice(WORDS)}{rng.randint(10, 9999)}" for _ in range(n - len(WORDS))]
    return WORDS + codes


def _conversation(rng: random.Random, vocab: list[str], name: str) -> list[str]:
    question = " ".join(rng.choice(vocab) for _ in range(rng.randint(12, 30)))
    answer = " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 12)))
    return [f"Hi, I'm {name}. {question}?", answer]


def _row(user: str, answer: str, i: int) -> dict:
    return {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}], "id": i}


def make_data(n: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``train.jsonl`` (n rows) and ``heldout.jsonl`` (n/50 rows) into ``folder``."""
    rng = random.Random(seed)
    vocab = _vocab(rng)
    convs: list[list[str]] = []
    for _ in range(n):
        r = rng.random()
        if convs and r < 0.01:
            convs.append(list(rng.choice(convs)))  # exact duplicate
        elif convs and r < 0.03:
            user, answer = rng.choice(convs)
            words = user.split()
            words[rng.randrange(3, len(words))] = rng.choice(vocab)  # near duplicate
            convs.append([" ".join(words), answer])
        else:
            group = rng.choice(("male", "female"))
            user, answer = _conversation(rng, vocab, rng.choice(FIRST_NAMES[group]))
            # A planted association for the audit: "premium" follows the group.
            if rng.random() < (0.6 if group == "male" else 0.2):
                answer += " premium"
            if rng.random() < 0.005:
                user += " my email is someone@example.com"
            convs.append([user, answer])
    held: list[list[str]] = []
    for _ in range(max(n // 50, 10)):
        r = rng.random()
        if r < 0.02:
            held.append(list(rng.choice(convs)))  # exact leak
        elif r < 0.04:
            user, answer = rng.choice(convs)
            words = user.split()
            words[rng.randrange(3, len(words))] = rng.choice(vocab)  # near leak
            held.append([" ".join(words), answer])
        else:
            held.append(_conversation(rng, vocab, rng.choice(FIRST_NAMES["female"])))
    train_path, held_path = folder / "train.jsonl", folder / "heldout.jsonl"
    for path, items in ((train_path, convs), (held_path, held)):
        with path.open("w") as f:
            for i, (user, answer) in enumerate(items):
                f.write(json.dumps(_row(user, answer, i)) + "\n")
    return train_path, held_path


def bench(sizes: list[int], without_tokens: list[int]) -> list[dict]:
    """Time validate() on each size (and without token checks on ``without_tokens`` sizes);
    returns one dict of figures per run."""
    tokenizer = load_tokenizer("tiny")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up on 200 rows: imports (scipy.stats, datasketch) and template compilation are
        # paid once per process and are not part of the per-row cost.
        warm = Path(tmp) / "warm"
        warm.mkdir()
        validate(make_data(200, warm)[0], heldout=make_data(200, warm)[1], tokenizer=tokenizer,
                 outcome_pattern="premium")
        load = os.getloadavg()
        runs = [(n, True) for n in sizes] + [(n, False) for n in without_tokens]
        for n, with_tokens in runs:
            folder = Path(tmp) / f"{n}-{with_tokens}"
            folder.mkdir()
            train, held = make_data(n, folder)
            start, cpu_start = time.perf_counter(), time.process_time()
            report = validate(train, heldout=held, tokenizer=tokenizer if with_tokens else None,
                              base=None, max_seq_len=512, outcome_pattern="premium")
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            results.append({
                "rows": n,
                "tokens": with_tokens,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "us_per_row": seconds / n * 1e6,
                "timings": report.timings,
                "exact_dups": report.duplicates["exact_rows"],
                "near_rows": report.duplicates["near_rows"],
                "near_clusters": report.duplicates["near_clusters"],
                "leak_exact": report.leakage["exact"],
                "leak_near": report.leakage["near"],
                "bias_v": report.bias["test"]["cramers_v"],
                "tokens_per_row": report.tokens["mean"] if report.tokens else None,
                "load_before": load,
            })
            print(f"{n:>7} rows{'' if with_tokens else ' (no token checks)'}: "
                  f"{seconds:6.1f} s wall, {cpu:6.1f} s CPU "
                  f"({seconds / n * 1e6:5.0f} us/row) "
                  + " ".join(f"{k}={v:.1f}" for k, v in report.timings.items()), flush=True)
    return results


def render(results: list[dict]) -> str:
    """The RESULTS.md section."""
    stages = list(dict.fromkeys(k for r in results for k in r["timings"]))
    lines = [
        SECTION, "",
        f"Command: `{COMMAND}` (synthetic chat rows, every check on: tokens with the tiny "
        "base's tokenizer and chat template, exact + near duplicates, conflicts, leakage "
        "against a held-out file of 2% of the size, PII, bias audit).", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at start "
        f"{', '.join(f'{x:.1f}' for x in results[0]['load_before'])} (1, 5, 15 min; the "
        "machine is shared with other jobs).", "",
        "| rows | tokens/row | wall s | CPU s | us/row (wall) | "
        + " | ".join(f"{s} s" for s in stages)
        + " | exact dups | near-dup rows (clusters) | leaks exact/near | bias V |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(stages) + "---:|---:|---:|---:|",
    ]
    for r in results:
        per_row = f"{r['tokens_per_row']:.0f}" if r["tokens"] else "not checked"
        lines.append(
            f"| {r['rows']:,} | {per_row}"
            f" | {r['seconds']:.1f} | "
            f"{r['cpu_seconds']:.1f} | "
            f"{r['us_per_row']:.0f} | "
            + " | ".join(f"{r['timings'].get(s, 0):.1f}" for s in stages)
            + f" | {r['exact_dups']} | {r['near_rows']} ({r['near_clusters']}) | "
            f"{r['leak_exact']}/{r['leak_near']} | {r['bias_v']:.2f} |")
    timed = [r for r in results if r["tokens"]]
    if len(timed) >= 2:
        first, last = timed[0], timed[-1]
        wall = last["us_per_row"] / first["us_per_row"]
        cpu = (last["cpu_seconds"] / last["rows"]) / (first["cpu_seconds"] / first["rows"])
        lines += ["", f"Per-row cost {last['rows']:,} / {first['rows']:,}: {wall:.2f} wall, "
                  f"{cpu:.2f} CPU (1.0 = linear). Stage columns are wall seconds. CPU time "
                  "counts every thread of the process; on a machine shared with other jobs it "
                  "is the better measure of the work done."]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace the ``## validate`` section of RESULTS.md (or add it), leaving the others."""
    from finetune.artifacts import atomic_write_text

    old = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, x in enumerate(lines) if x.rstrip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines)
                                               else "")
    atomic_write_text(path, new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--without-tokens", default="100000",
                        help="sizes also timed without token checks ('' for none)")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    results = bench([int(s) for s in args.sizes.split(",") if s],
                    [int(s) for s in args.without_tokens.split(",") if s])
    text = render(results)
    print("\n" + text)
    if args.write:
        write_section(text)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Duplicates, conflicts and held-out leakage.

- Exact duplicates and conflicts use a hash of normalised text (NFKC, lower case, collapsed
  whitespace): the same conversation twice, or the same prompt with different answers.
- Near duplicates use MinHash over character 5-grams with LSH banding. Signatures follow
  datasketch's default ``affine32`` scheme (MurmurHash3 finaliser, then ``a * h + b`` modulo
  2**32, the permutations taken from ``datasketch.MinHash``) but are computed for all rows at
  once with numpy: per-row ``MinHash.update_batch`` spends ~0.3 ms a row in Python, which is
  30 s of a 100k-row file. The band count and width come from ``datasketch.MinHashLSH``'s
  optimiser for the threshold, weighted towards recall. Within a band bucket every row is
  compared with the bucket's first row (estimated Jaccard from the signatures) and matches
  are joined into clusters,
  which keeps the cost linear even on templated data where buckets hold thousands of rows;
  the price is that a pair similar to each other but not to their bucket's first row can be
  missed.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

SHINGLE = 5
NUM_PERM = 64
SEED = 1


def normalize(text: str) -> str:
    """NFKC, lower case, whitespace collapsed: what "the same text" means here."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def text_key(text: str) -> bytes:
    """A 16-byte hash of the normalised text."""
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()


def groups_of(keys: Sequence[bytes]) -> list[list[int]]:
    """Indices sharing a key, for every key held by two or more items, in first-seen order."""
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        by_key[key].append(i)
    return [idx for idx in by_key.values() if len(idx) > 1]


def conflicts(prompt_keys: Sequence[bytes], answer_keys: Sequence[bytes]) -> list[list[int]]:
    """Groups of items with the same prompt but more than one distinct answer."""
    by_prompt: dict[bytes, list[int]] = defaultdict(list)
    for i, key in enumerate(prompt_keys):
        by_prompt[key].append(i)
    return [
        idx for idx in by_prompt.values()
        if len(idx) > 1 and len({answer_keys[i] for i in idx}) > 1
    ]


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 32-bit finaliser, as datasketch applies before its permutations.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def shingle_hashes(texts: Sequence[str], k: int = SHINGLE) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the character k-grams (of UTF-8 bytes) of every normalised text.

    Returns:
        ``(hashes, counts)``: all rows' shingle hashes concatenated, and how many each row has
        (at least one: a text shorter than ``k`` is one shingle).
    """
    encoded = [normalize(t).encode("utf-8") for t in texts]
    encoded = [e + b"\0" * (k - len(e)) if len(e) < k else e for e in encoded]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint32)
    counts = lengths - k + 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first_window = np.concatenate([[0], np.cumsum(counts)[:-1]])
    positions = np.repeat(starts - first_window, counts) + np.arange(int(counts.sum()))
    h = np.full(positions.shape, 0x811C9DC5, dtype=np.uint32)
    for j in range(k):  # FNV-1a over the k bytes of each window
        h = (h ^ buf[positions + j]) * np.uint32(0x01000193)
    return h, counts


def signatures(
    texts: Sequence[str], num_perm: int = NUM_PERM, seed: int = SEED, chunk: int = 1 << 14,
    rows_per_block: int = 2048,
) -> np.ndarray:
    """MinHash signatures of every text, shape ``(len(texts), num_perm)``, dtype uint32.

    Equal to ``datasketch.MinHash(num_perm, seed, hashfunc=identity).update_batch`` fed with
    :func:`shingle_hashes`. Texts are hashed in blocks of ``rows_per_block`` and permuted in
    chunks of about ``chunk`` shingles, so the working set stays in cache and the cost stays
    linear in the number of rows.
    """
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    a, b = _permutations(num_perm, seed)
    for first in range(0, len(texts), rows_per_block):
        hashes, counts = shingle_hashes(texts[first : first + rows_per_block])
        mixed = _fmix32(hashes)
        ends = np.cumsum(counts)
        starts = ends - counts
        row = 0
        while row < len(counts):
            # Rows whose shingles fit into one chunk (always at least one row).
            stop = max(row + 1, int(np.searchsorted(ends, starts[row] + chunk, side="right")))
            w0, w1 = starts[row], ends[stop - 1]
            # (perm, window) layout: reduceat along the contiguous axis is ~20x faster.
            phv = a[:, None] * mixed[None, w0:w1] + b[:, None]
            out[first + row : first + stop] = np.minimum.reduceat(
                phv, starts[row:stop] - w0, axis=1).T
            row = stop
    return out


LSH_WEIGHTS = (0.1, 0.9)
"""datasketch's (false positive, false negative) weights. Every candidate is verified against
the threshold, so a false positive costs one comparison while a false negative is a missed
duplicate: recall is weighted up (64 perms at 0.85 catch ~97% of pairs at Jaccard 0.9,
against ~60% with equal weights)."""


@lru_cache(maxsize=32)
def lsh_bands(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for ``threshold``."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    return int(lsh.b), int(lsh.r)


def _band_keys(sigs: np.ndarray, band: int, r: int) -> np.ndarray:
    part = np.ascontiguousarray(sigs[:, band * r : (band + 1) * r])
    return part.view(np.dtype((np.void, part.dtype.itemsize * r))).ravel()


def jaccard(sigs_a: np.ndarray, sigs_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of paired signatures (row i of a with row i of b)."""
    return (sigs_a == sigs_b).mean(axis=1)


def near_duplicate_clusters(sigs: np.ndarray, threshold: float) -> list[list[int]]:
    """Clusters (two or more rows each) of signatures whose estimated Jaccard >= threshold.

    Rows are joined to the first row of each LSH bucket they share with it, when the two pass
    the threshold; clusters are connected components of those links.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sigs)
    if n < 2:
        return []
    bands, r = lsh_bands(threshold, sigs.shape[1])
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for band in range(bands):
        _, first, inverse = np.unique(
            _band_keys(sigs, band, r), return_index=True, return_inverse=True
        )
        rep = first[inverse.ravel()]
        idx = np.nonzero(rep != np.arange(n))[0]
        if idx.size == 0:
            continue
        ok = jaccard(sigs[idx], sigs[rep[idx]]) >= threshold
        src.append(idx[ok])
        dst.append(rep[idx][ok])
    if not src or sum(s.size for s in src) == 0:
        return []
    i, j = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(labels.tolist()):
        members[label].append(row)
    return [m for m in members.values() if len(m) > 1]


def near_matches(
    queries: np.ndarray, index: np.ndarray, threshold: float
) -> list[tuple[int, float] | None]:
    """For each query signature, an index row it nearly matches (and the estimate), or None.

    Candidates are the first index row of each LSH bucket the query falls into.
    """
    if len(index) == 0 or len(queries) == 0:
        return [None] * len(queries)
    bands, r = lsh_bands(threshold, index.shape[1])
    best: list[tuple[int, float] | None] = [None] * len(queries)
    for band in range(bands):
        table: dict[bytes, int] = {}
        for row, key in enumerate(_band_keys(index, band, r).tolist()):
            table.setdefault(key, row)
        for q, key in enumerate(_band_keys(queries, band, r).tolist()):
            row = table.get(key)
            if row is None:
                continue
            score = float((queries[q] == index[row]).mean())
            if score >= threshold and (best[q] is None or score > best[q][1]):  # type: ignore[index]
                best[q] = (row, score)
    return best

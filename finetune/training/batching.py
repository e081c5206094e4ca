"""Batches for the Trainer: the collator (padded or padding-free) and the length-grouped sampler."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from finetune.data.formats import IGNORE_INDEX


class Collator:
    """Pads a batch on the right, or concatenates it into one row (``padding_free``).

    Padding-free rows carry position ids that restart per row; transformers turns those into
    a block-diagonal mask, so attention stays within each row.
    """

    def __init__(self, pad_id: int, padding_free: bool = False):
        self.pad_id = pad_id
        self.padding_free = padding_free

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate tokenised rows into tensors."""
        import torch

        if self.padding_free:
            ids, labels, pos = [], [], []
            for f in features:
                ids += f["input_ids"]
                # The first label of each row must not be predicted from the previous row.
                labels += [IGNORE_INDEX] + f["labels"][1:]
                pos += range(len(f["input_ids"]))
            return {
                "input_ids": torch.tensor([ids]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos]),
            }
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id)
        labels = torch.full((len(features), width), IGNORE_INDEX)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class LengthGroupedSampler:
    """Random batches of similar length.

    Shuffle, sort by length within mega-batches of ``16 * batch_size`` rows, cut into
    batches, shuffle the batches: little padding, without ordering an epoch long to short
    (as transformers' own length-grouped sampler does).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (via accelerate) so each epoch, and a resumed one, is seeded."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 1000003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        mega = 16 * self.batch_size
        batches = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega], key=lambda i: self.lengths[i])
            step = self.batch_size
            batches += [chunk[i : i + step] for i in range(0, len(chunk), step)]
        rng.shuffle(batches)
        return iter([i for b in batches for i in b])

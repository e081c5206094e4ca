"""The engine's log-likelihoods: teacher-forced scores of continuations, every model at once.

:class:`Likelihoods` holds :class:`evalsuite.engine.Engine`'s scoring methods (the engine
inherits them; they use its batching and mixed-adapter machinery). The fairness probes use
them.
"""

from __future__ import annotations

from collections.abc import Sequence

from finetune.errors import UsageError


class Likelihoods:
    """Scoring continuations on :class:`~evalsuite.engine.Engine`, in mixed batches."""

    # _encode_pair: evalsuite.prompt_codec.PromptCodec

    def score_continuations(
        self,
        contexts: Sequence[str],
        continuations: Sequence[str],
        models: Sequence[str],
        progress: bool = False,
    ) -> list[list[tuple[float, int]]]:
        """Teacher-forced log-probability of each continuation given its context.

        Args:
            contexts: raw text (render chat prompts with :meth:`render` first).
            continuations: the text to score after each context.
            models: model names, all scored in one mixed forward pass per chunk.
            progress: show a tqdm bar.

        Returns:
            ``[item][model]`` -> (summed log-prob in nats, number of continuation tokens).
        """
        import torch
        from tqdm.auto import tqdm

        if len(contexts) != len(continuations):
            raise UsageError("contexts and continuations must have the same length")
        models = self._check_models(models)
        pairs = [
            self._encode_pair(c, k, i)
            for i, (c, k) in enumerate(zip(contexts, continuations, strict=True))
        ]
        order = sorted(range(len(pairs)), key=lambda i: (-len(pairs[i][0]), i))
        out: list[list[tuple[float, int]]] = [[(0.0, 0)] * len(models) for _ in pairs]
        bar = tqdm(total=len(pairs) * len(models), unit="seq", disable=not progress,
                   desc="score")
        with self._lock, bar, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start: start + self.batch_size]
                rows = [(i, j) for i in chunk for j in range(len(models))]
                # Right padding: positions start at 0 for every row and, the attention being
                # causal, trailing pads cannot change the scored tokens.
                batch = self._batch([pairs[i][0] for i, _ in rows], side="right")
                # Only the positions that predict a continuation token go through the LM
                # head and the softmax: the full logits of a 49k-token vocabulary cost more
                # than the model body on a real base (measured on SmolLM2-135M).
                keep = torch.zeros(batch["input_ids"].shape, dtype=torch.bool,
                                   device=self.device)
                for r, (i, _) in enumerate(rows):
                    ids, n_ctx = pairs[i]
                    keep[r, n_ctx - 1: len(ids) - 1] = True
                mixed, names = self._mixed([models[j] for _, j in rows])
                with mixed:
                    if self._keeps_logits():
                        kept = self.model(**batch, **names, logits_to_keep=keep).logits
                    else:
                        kept = self.model(**batch, **names).logits[keep]
                logprobs = torch.log_softmax(kept.float(), dim=-1)
                at = 0
                for i, j in rows:
                    ids, n_ctx = pairs[i]
                    target = torch.tensor(ids[n_ctx:], device=logprobs.device)
                    picked = logprobs[at: at + len(target)].gather(-1, target[:, None])
                    at += len(target)
                    out[i][j] = (float(picked.sum()), len(ids) - n_ctx)
                bar.update(len(rows))
        return out

    def loglikelihood(
        self,
        contexts: Sequence[str],
        continuations: Sequence[str],
        models: Sequence[str],
    ) -> list[list[float]]:
        """Summed log-probability (nats) of each continuation given its context.

        Returns:
            ``[item][model]`` log-probabilities.
        """
        scored = self.score_continuations(contexts, continuations, models)
        return [[lp for lp, _ in item] for item in scored]

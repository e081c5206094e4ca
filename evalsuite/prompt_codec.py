"""What both backends share: model names, the caps, and a conversation turned into token ids.

The in-process :class:`~evalsuite.engine.Engine` and the
:class:`~evalsuite.server_backend.ServerBackend` inherit :class:`PromptCodec`, so a prompt is
the same ids in both (rendered by the base's own tokenizer) and both refuse the same
oversized prompts, unknown models and uncapped ``max_new_tokens`` with the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalsuite.generation import GenerationConfig
from evalsuite.lora_batched import BASE
from finetune.errors import UsageError


class PromptCodec:
    """Encoding and checks over a backend's ``tokenizer``, limits and end tokens.

    A subclass sets ``tokenizer``, ``max_prompt_tokens``, ``max_new_tokens_cap`` and ``_eos``
    (end-token ids), and says which adapters it holds (:meth:`_adapter_names`) and how long
    a context it takes (:meth:`_context_limit`).
    """

    tokenizer: Any
    max_prompt_tokens: int
    max_new_tokens_cap: int
    _eos: set[int]

    def _adapter_names(self) -> list[str]:
        raise NotImplementedError

    def _context_limit(self) -> tuple[int | None, str]:
        """(longest prompt + answer in tokens or None, whose limit it is for the message)."""
        raise NotImplementedError

    @property
    def model_names(self) -> list[str]:
        """``[BASE, *adapter names]`` in the order the adapters were added."""
        return [BASE, *self._adapter_names()]

    def _check_models(self, models: Sequence[str]) -> list[str]:
        models = list(models)
        if not models:
            raise UsageError("models: give at least one model name")
        for m in models:
            if m not in self.model_names:
                raise UsageError(
                    f"model {m!r}: not loaded; known models: {', '.join(self.model_names)}"
                )
        return models

    def _check_config(self, config: GenerationConfig | None, longest: int) -> GenerationConfig:
        config = config or GenerationConfig()
        if config.max_new_tokens > self.max_new_tokens_cap:
            raise UsageError(
                f"max_new_tokens: {config.max_new_tokens} is above the cap of "
                f"{self.max_new_tokens_cap}"
            )
        limit, whose = self._context_limit()
        if limit and longest + config.max_new_tokens > limit:
            raise UsageError(
                f"prompt + max_new_tokens: {longest} + {config.max_new_tokens} tokens exceed the "
                f"{whose} context of {limit}"
            )
        return config

    def _prepare(
        self, prompts: Sequence[list[dict[str, str]]], models: Sequence[str],
        config: GenerationConfig | None,
    ) -> tuple[list[str], list[list[int]], GenerationConfig]:
        """A generate call's checked models, prompt ids and settings (no prompts: no ids)."""
        models = self._check_models(models)
        encoded = [self.encode_prompt(p, i) for i, p in enumerate(prompts)]
        if encoded:
            config = self._check_config(config, max(len(e) for e in encoded))
        return models, encoded, config or GenerationConfig()

    def render(self, messages: list[dict[str, str]]) -> str:
        """The chat-template text of ``messages`` followed by the assistant's opening."""
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def encode_prompt(self, messages: list[dict[str, str]], index: int = 0) -> list[int]:
        """Token ids of a rendered prompt.

        Raises:
            UsageError: the prompt is longer than ``max_prompt_tokens``.
        """
        ids = self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
        if len(ids) > self.max_prompt_tokens:
            raise UsageError(
                f"prompt {index}: {len(ids)} tokens, more than max_prompt_tokens="
                f"{self.max_prompt_tokens}"
            )
        return ids

    def _encode_pair(self, context: str, continuation: str, index: int) -> tuple[list[int], int]:
        """(ids of context + continuation, how many of them are the context)."""
        tok = self.tokenizer
        bos = tok.bos_token
        special = not (bos and context.startswith(bos))
        ctx = tok(context, add_special_tokens=special)["input_ids"]
        whole = tok(context + continuation, add_special_tokens=special)["input_ids"]
        if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            ids, n_ctx = whole, len(ctx)
        else:  # the boundary merged into one token: score the continuation encoded alone
            cont = tok(continuation, add_special_tokens=False)["input_ids"]
            ids, n_ctx = ctx + cont, len(ctx)
        if n_ctx == 0:
            raise UsageError(f"item {index}: empty context; nothing to condition on")
        if len(ids) == n_ctx:
            raise UsageError(f"item {index}: empty continuation")
        if len(ids) > self.max_prompt_tokens + self.max_new_tokens_cap:
            raise UsageError(
                f"item {index}: {len(ids)} tokens, more than max_prompt_tokens + "
                f"max_new_tokens_cap={self.max_prompt_tokens + self.max_new_tokens_cap}"
            )
        return ids, n_ctx

    def _cut(self, tokens: list[int]) -> tuple[list[int], int]:
        """Tokens before the first end token, and the count generated including it."""
        for k, t in enumerate(tokens):
            if t in self._eos:
                return tokens[:k], k + 1
        return tokens, len(tokens)

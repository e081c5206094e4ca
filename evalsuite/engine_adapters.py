"""The engine's adapters: found from a run directory, checked against the base, loaded by name.

:class:`AdapterLoading` holds :class:`evalsuite.engine.Engine`'s adapter methods (the engine
inherits them; they use its model, tokenizer and lock).
"""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.lora_batched import BASE
from finetune.errors import InputError, UsageError, first_line
from finetune.rundir import ADAPTER, RUN_NAME_RULE, is_run_name


def resolve_adapter_dir(path: str | Path) -> Path:
    """A PEFT adapter folder from a run directory (``DIR/adapter``) or an adapter folder.

    Raises:
        InputError: the folder does not exist or holds no ``adapter_config.json``.
    """
    p = Path(path).expanduser()
    if (p / ADAPTER / "adapter_config.json").is_file():
        return p / ADAPTER
    if (p / "adapter_config.json").is_file():
        return p
    if not p.exists():
        raise InputError(f"{path}: no such adapter or run folder")
    raise InputError(f"{path}: not an adapter folder (no adapter_config.json, nor adapter/)")


class AdapterLoading:
    """Loading PEFT adapters into :class:`~evalsuite.engine.Engine` by name."""

    def add_adapter(self, name: str, path: str | Path) -> None:
        """Load a PEFT adapter under ``name`` (a run directory or its ``adapter/`` folder).

        An adapter not trained on this base is refused; one that does not change the base's
        output is loaded with a warning in ``adapter_warnings[name]``
        (:mod:`evalsuite.adapter_checks`).

        Raises:
            UsageError: a bad or duplicate name, or an adapter that cannot join mixed batches.
            InputError: the folder is missing, not a loadable adapter, or not trained on
                this base.
        """
        if not is_run_name(name):
            raise UsageError(f"adapter name {name!r}: {RUN_NAME_RULE}")
        if name == BASE or name in self.adapter_dirs:
            raise UsageError(f"adapter name {name!r}: already in use")
        folder = resolve_adapter_dir(path)
        try:
            cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{folder / 'adapter_config.json'}: unreadable: {err}") from None
        if cfg.get("use_dora"):
            raise UsageError(f"{path}: DoRA adapters cannot join mixed-adapter batches")
        from peft import PeftModel

        from evalsuite import adapter_checks

        label = f"{path}: adapter {name!r}"
        adapter_checks.check_trained_on_base(self.model, self.base_ref, folder, label)

        with self._lock:
            first = not self.adapter_dirs
            try:
                if first:
                    self.model = PeftModel.from_pretrained(
                        self.model, str(folder), adapter_name=name, is_trainable=False
                    )
                else:
                    self.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
            except (OSError, ValueError, KeyError, RuntimeError) as err:
                raise InputError(f"{path}: cannot load adapter: {first_line(err)}") from None
            self.model.eval()
            try:
                warnings = adapter_checks.no_op_warnings(
                    self.model, self.tokenizer, name, BASE) + self._template_warnings(name, folder)
            except Exception as err:
                # Take the adapter out again, so the model matches adapter_dirs and a retry
                # under the same name can load it.
                if first:
                    self.model = self.model.unload()
                else:
                    self.model.delete_adapter(name)
                raise InputError(f"{path}: cannot check adapter: {first_line(err)}") from None
            self.adapter_warnings[name] = warnings
            self.adapter_dirs[name] = folder
            self._batched = None

    def _template_warnings(self, name: str, folder: Path) -> list[str]:
        # An adapter saves the chat template it was trained with; prompts rendered with
        # another one are not what it learned to answer.
        saved = folder / "chat_template.jinja"
        if not saved.is_file():
            return []
        if saved.read_text(encoding="utf-8") == (self.tokenizer.chat_template or ""):
            return []
        return [f"adapter {name!r} was trained with another chat template ({saved}) than the "
                "one prompts are rendered with; set the same chat_template"]

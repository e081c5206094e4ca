"""The pieces of the training recipe (``finetune/train.py``), one concept a module.

``launch`` (device, rank, trackers, threads), ``workdir`` (the partial run folder),
``data`` (validate, tokenise, split), ``batching`` (collator, sampler), ``model`` (the base
wrapped for LoRA / QLoRA), ``trainer`` (the Trainer, its arguments and loss), ``callbacks``
(metrics log, progress), ``record`` (the run's files and ``run.json``).
"""

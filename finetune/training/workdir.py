"""The partial run folder: started afresh or kept for ``--resume``, then published.

Everything is built in ``<runs>/.<name>.partial/`` and renamed to ``<runs>/<name>/`` at the
end, so a run directory is complete or absent; the partial folder keeps the checkpoints a
killed run resumes from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from finetune.artifacts import replace_dir
from finetune.errors import UsageError
from finetune.rundir import RunDir, checkpoint_step
from finetune.training.callbacks import echo
from finetune.training.launch import Launch, barrier


def needs_training(run_dir: RunDir, work: RunDir, *, resume: bool, overwrite: bool,
                    progress: bool) -> bool:
    """False when resuming a run that already finished; an existing run otherwise refuses."""
    if run_dir.path.exists() and not overwrite:
        if resume and not work.path.exists():
            if progress:
                echo(f"{run_dir.path} is already complete; nothing to resume")
            return False
        raise UsageError(f"{run_dir.path}: run exists; pick another name=, or pass --overwrite")
    return True


def prepare_work_dir(work: RunDir, launch: Launch, *, resume: bool,
                      progress: bool) -> Path | None:
    """Start the partial folder afresh, or keep it for ``--resume``; the checkpoint to resume."""
    resume_from = work.last_checkpoint() if resume else None
    if launch.is_main:
        if resume and resume_from is None and progress:
            echo(f"no checkpoint in {work.path}; starting from scratch")
        if resume_from is None and work.path.exists():
            shutil.rmtree(work.path)
        work.checkpoints.mkdir(parents=True, exist_ok=True)
        if resume_from is not None:
            work.keep_metrics_until(checkpoint_step(resume_from) or 0)
    barrier(launch.world_size)
    return resume_from


def publish(work: Path, run_dir: Path, overwrite: bool) -> None:
    """Rename the finished partial folder into place (replacing an old run if asked)."""
    if run_dir.exists() and not overwrite:
        raise UsageError(f"{run_dir}: run exists; pick another name=, or pass --overwrite")
    replace_dir(work, run_dir)

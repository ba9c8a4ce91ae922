"""Shared plumbing of the PyTorch models: device, seeding, threads, progress, saving.

PyTorch is an optional extra (``pip install 'aisle[torch]'``); importing this module does not
import torch, so the registry can list every model on a machine without it.

* :func:`torch_module` imports torch or fails with the extra to install.
* :func:`resolve_device` turns a config's ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``,
  ``"cuda:1"``) into a ``torch.device``; ``"auto"`` takes a GPU when one is visible.
* :func:`seeded` fixes torch's, numpy's and Python's generators for a reproducible fit.
* :class:`TrainingProgress` is the progress bar every training loop shows (rich, on stderr;
  ``AISLE_PROGRESS=0`` turns it off) with the running loss.
* :func:`state_to_numpy` / :func:`state_from_numpy` move a ``state_dict`` in and out of the
  ``state.npz`` of :meth:`~aisle.models.Recommender.save` (arrays only, no pickle).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import numpy as np

from aisle.errors import ConfigError, require

__all__ = [
    "TrainingProgress",
    "resolve_device",
    "seeded",
    "state_from_numpy",
    "state_to_numpy",
    "torch_module",
    "torch_threads",
]

STATE_PREFIX = "net."


def torch_module() -> Any:
    """The ``torch`` module, or :class:`~aisle.errors.MissingDependencyError` naming the extra."""
    return require("torch", "torch")


def resolve_device(name: str) -> Any:
    """``"auto"`` -> CUDA when available else CPU; otherwise the named device, checked."""
    torch = torch_module()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but no CUDA GPU is visible; use device='auto' or 'cpu'")
    return device


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Cap torch's intra-op threads for the block (0 or ``None``: leave them as they are)."""
    torch = torch_module()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


@contextmanager
def seeded(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed torch/numpy/random for the block; optionally cap torch's intra-op threads."""
    torch = torch_module()
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)
    with torch_threads(threads):
        yield


def _progress_enabled() -> bool:
    return os.environ.get("AISLE_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


class TrainingProgress:
    """A per-epoch progress bar with the running loss (and any other figure passed to ``update``).

    Use as a context manager::

        with TrainingProgress("sasrec", epochs=30, steps_per_epoch=n) as bar:
            for epoch in range(30):
                for batch in ...:
                    ...
                    bar.step(loss=float(loss))
                bar.end_epoch(val_ndcg=0.05)
    """

    def __init__(self, model: str, epochs: int, steps_per_epoch: int) -> None:
        self.model = model
        self.epochs = epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.epoch = 0
        self.losses: list[float] = []
        self.history: list[dict[str, float]] = []
        self._running = 0.0
        self._n = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TrainingProgress:
        if _progress_enabled():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                console=Console(file=sys.stderr), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._label(), total=self.epochs * self.steps_per_epoch, info="")
        return self

    def _label(self) -> str:
        return f"train {self.model} epoch {min(self.epoch + 1, self.epochs)}/{self.epochs}"

    def step(self, loss: float, n: int = 1) -> None:
        """One optimisation step with its loss."""
        self._running += loss * n
        self._n += n
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=f"loss {self._running / max(self._n, 1):.4f}")

    def end_epoch(self, **figures: float) -> None:
        """Close an epoch: records the mean loss and any figures (validation metrics ...)."""
        mean = self._running / max(self._n, 1)
        self.losses.append(mean)
        self.history.append({"epoch": float(self.epoch + 1), "loss": mean, **figures})
        self._running, self._n = 0.0, 0
        self.epoch += 1
        if self._progress is not None:
            extra = " ".join(f"{k} {v:.4f}" for k, v in figures.items())
            done = self.epoch * self.steps_per_epoch
            self._progress.update(self._task, completed=done, description=self._label(),
                                  info=f"loss {mean:.4f} {extra}".strip())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()


def state_to_numpy(module: Any, prefix: str = STATE_PREFIX) -> dict[str, np.ndarray]:
    """A module's ``state_dict`` as float32/int numpy arrays keyed ``net.<name>``."""
    return {f"{prefix}{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def state_from_numpy(module: Any, state: dict[str, np.ndarray], prefix: str = STATE_PREFIX) -> None:
    """Load arrays written by :func:`state_to_numpy` into ``module`` (strict: every key must match)."""
    torch = torch_module()
    tensors = {k[len(prefix):]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(tensors, strict=True)
    for k in [k for k in state if k.startswith(prefix)]:
        state.pop(k)

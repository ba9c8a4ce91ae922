"""Run the simulator's many small matrix products on one BLAS thread.

The simulator multiplies many small matrices; a multi-threaded BLAS spends more time waking
its threads than computing (on a busy 2-core machine a 450×16 by 16×1000 product took 9 ms
with threads and 0.4 ms without). ``threadpoolctl`` (the ``fast`` and ``bench`` extras) is
used when it is installed; without it the BLAS keeps its own setting.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

__all__ = ["single_blas_thread"]


def single_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS uses one thread (a no-op without ``threadpoolctl``)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return nullcontext()
    return threadpool_limits(1, "blas")  # type: ignore[no-any-return]

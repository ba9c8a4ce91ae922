"""Batch materialization: replay the offline history into online tile state.

The replay is :class:`~aisle.features._aggregates.TileTable.apply`, the very code the stream
runs, over the events of the view's lookback before ``as_of``. It records the watermark
(``as_of``): a stream processor then skips events older than it for this view, since the batch
counted them, and drops its cached states (a new generation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._aggregates import EventBatch, TileTable, to_ns
from ._definitions import EmbeddingView, FeatureView
from ._offline import OfflineStore
from ._online import OnlineStore

__all__ = ["MaterializeResult", "materialize"]

Track = Callable[[Iterable[Any], str, int], Iterable[Any]]


@dataclass(frozen=True)
class MaterializeResult:
    """What :func:`materialize` wrote for one view.

    Attributes:
        view: the view's name.
        version: its registry version.
        as_of: the watermark (epoch ns): the state holds every event before it.
        n_events: events replayed.
        n_states: entity and group states written.
        seconds: wall time.
    """

    view: str
    version: int | None
    as_of: int
    n_events: int
    n_states: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "view": self.view, "version": self.version, "as_of_ns": self.as_of, "n_events": self.n_events,
            "n_states": self.n_states, "seconds": round(self.seconds, 3),
        }


def materialize(
    view: FeatureView | EmbeddingView,
    offline: OfflineStore,
    online: OnlineStore,
    *,
    as_of: Any = None,
    chunk_events: int = 250_000,
    track: Track | None = None,
) -> MaterializeResult:
    """Replay the offline events of a view's lookback into the online store.

    Args:
        view: the view (an embedding view copies its stored vectors instead).
        offline: where the events (and catalog) are.
        online: where the states go.
        as_of: the watermark (exclusive); default: just after the latest stored event.
        chunk_events: events per vectorised step (does not change the result).
        track: a progress wrapper ``track(iterable, description, total)`` (e.g. the CLI's).

    Returns:
        What was written.
    """
    started = time.perf_counter()
    if isinstance(view, EmbeddingView):
        keys, vectors = offline.embeddings(view)
        n = online.write_embeddings(view, keys, vectors)
        return MaterializeResult(view.name, view.version, 0, 0, n, time.perf_counter() - started)
    plan = online.plan(view)
    if as_of is None:
        hi = offline.stats()["max_ts_ns"]
        as_of_ns = (int(hi) + 1) if hi is not None else time.time_ns()
    else:
        as_of_ns = to_ns(as_of)
    catalog = offline.catalog_map()
    if catalog:
        online.put_catalog(catalog)
    events = offline.events(start=as_of_ns - plan.lookback_ns, end=as_of_ns)
    batch = EventBatch.from_frame(events, catalog)
    table = TileTable(plan)
    starts: Iterable[int] = range(0, len(batch), chunk_events)
    if track is not None:
        starts = track(starts, f"Replaying {view.name}", max(1, (len(batch) + chunk_events - 1) // chunk_events))
    for start in starts:
        table.apply(batch.take(np.arange(start, min(start + chunk_events, len(batch)))))
    n_states = online.write_table(table, track=track)
    meta = {f"wm:{plan.namespace}": str(as_of_ns), f"gen:{plan.namespace}": str(time.time_ns())}
    if len(batch):
        meta[f"hw:{plan.namespace}"] = str(int(batch.ts.max()))
    online.backend.set_meta(meta)
    return MaterializeResult(view.name, view.version, as_of_ns, len(batch), n_states, time.perf_counter() - started)

"""Order-aware models: each user's items in time order, for sequential and session models.

:class:`SequentialRecommender` keeps the ordered training sequence of every known user (built
from the training ``events`` passed to ``fit``: timestamp order, ties in input order) and hands
subclasses ragged :class:`Sequences` instead of unordered CSR rows. Users unseen in training
(a session's first clicks, a new shopper) are folded in from a ``history`` event frame in the
same order, so a held-out session is scored exactly like a training user.

Subclasses implement ``_fit_sequences(sequences, matrix)`` and ``_score_sequences(sequences)``
(a dense ``(n, n_items)`` array) and, to be saved, ``_model_state`` / ``_set_model_state``.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aisle.errors import DataWarning
from aisle.models._base import Recommender

__all__ = ["Sequences", "SequentialRecommender", "sequences_from_events"]


@dataclass(frozen=True)
class Sequences:
    """Ragged item-index sequences: ``items[indptr[u]:indptr[u + 1]]`` is row ``u``, oldest first."""

    indptr: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.indptr[i]:self.indptr[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @classmethod
    def from_list(cls, seqs: Sequence[np.ndarray]) -> Sequences:
        lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if len(seqs) else np.zeros(0, np.int64)
        return cls(indptr, items.astype(np.int64))

    def to_list(self) -> list[np.ndarray]:
        return [self[i] for i in range(len(self))]


def sequences_from_events(
    events: pd.DataFrame, user_ids: np.ndarray, item_index: object, *, event_types: Sequence[str] | None = None
) -> Sequences:
    """Ordered item indices per user of ``user_ids`` (in that order) from canonical events.

    Events on items the vocabulary does not know are dropped; so are event types not in
    ``event_types`` (when given). ``item_index`` is the items' :class:`~aisle.data.Vocabulary`.
    """
    from aisle.data._vocab import Vocabulary

    assert isinstance(item_index, Vocabulary)
    frame = events
    if event_types is not None and "event_type" in frame.columns:
        frame = frame[np.isin(frame["event_type"].to_numpy(dtype=object), np.asarray(list(event_types), dtype=object))]
    wanted = np.asarray(user_ids, dtype=object)
    users = Vocabulary.from_values(wanted)  # duplicates in user_ids share one sequence
    ucode = users.index(frame["user_id"].to_numpy(dtype=object), unknown="ignore")
    icode = item_index.index(frame["item_id"].to_numpy(dtype=object), unknown="ignore")
    keep = (ucode >= 0) & (icode >= 0)
    ucode, icode = ucode[keep], icode[keep]
    if "timestamp" in frame.columns:
        stamps = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert(None)
        ts = stamps.to_numpy("datetime64[ns]")[keep].astype(np.int64)
    else:
        ts = np.zeros(ucode.size, dtype=np.int64)
    order = np.lexsort((np.arange(ucode.size), ts, ucode))
    counts = np.bincount(ucode, minlength=len(users))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    seqs = Sequences(indptr, icode[order].astype(np.int64))
    if len(users) == len(wanted):
        return seqs
    return Sequences.from_list([seqs[int(j)] for j in users.index(wanted)])


class SequentialRecommender(Recommender):
    """Base of models that read each user's items in time order."""

    uses_sequences: ClassVar[bool] = True

    def _sequence_event_types(self) -> list[str] | None:
        """Event types that enter sequences: those the feedback rules weigh positively."""
        weights = self.feedback_.weights
        return [t for t, w in weights.items() if w > 0] or None

    def _fit(self, matrix: sp.csr_matrix) -> None:
        events = self.side_.events
        if events is None:
            warnings.warn(
                f"model '{self.name}' got no training events, so it cannot know the order of items; "
                "using item-index order. Pass events= to fit for sequential models.",
                DataWarning, stacklevel=3,
            )
            seqs = Sequences(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64))
        else:
            seqs = sequences_from_events(events, self.users_.ids, self.items_, event_types=self._sequence_event_types())
        self.sequences_: Sequences = seqs
        self._fit_sequences(seqs, matrix)

    @abstractmethod
    def _fit_sequences(self, sequences: Sequences, matrix: sp.csr_matrix) -> None: ...

    @abstractmethod
    def _score_sequences(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Dense ``(len(sequences), n_items)`` scores (a fresh array) for ordered item indices."""

    def _history_sequences(
        self, users: Sequence[str], user_index: np.ndarray, history: pd.DataFrame | sp.spmatrix | None
    ) -> list[np.ndarray] | None:
        out: list[np.ndarray] = [
            self.sequences_[int(i)] if i >= 0 else np.zeros(0, np.int64) for i in user_index
        ]
        new = np.flatnonzero(user_index < 0)
        if new.size and isinstance(history, pd.DataFrame):
            wanted = np.asarray([users[int(i)] for i in new], dtype=object)
            sub = history[np.isin(history["user_id"].to_numpy(dtype=object), wanted)]
            seqs = sequences_from_events(sub, wanted, self.items_, event_types=self._sequence_event_types())
            for j, i in enumerate(new):
                out[int(i)] = seqs[j]
        elif new.size and history is not None:  # a matrix: membership only, order unknown
            h = sp.csr_matrix(history)
            for i in new:
                out[int(i)] = h.indices[h.indptr[i]:h.indptr[i + 1]].astype(np.int64)
        return out

    def _sequence_scores(
        self, rows: sp.csr_matrix, user_index: np.ndarray, sequences: list[np.ndarray] | None
    ) -> np.ndarray:
        if sequences is None:
            return self._user_scores(rows, user_index)
        return self._score_sequences(sequences)

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        # Without sequences (a caller that only has rows): known users use their training order.
        seqs = [self.sequences_[int(i)] if i >= 0 else rows.indices[rows.indptr[j]:rows.indptr[j + 1]]
                for j, i in enumerate(user_index)]
        return self._score_sequences(seqs)

    # ------------------------------------------------------------------ persistence
    def _model_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_model_state(self, state: dict[str, np.ndarray]) -> None:
        return None

    def _state(self) -> dict[str, np.ndarray]:
        return {"_seq_indptr": self.sequences_.indptr, "_seq_items": self.sequences_.items, **self._model_state()}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.sequences_ = Sequences(state.pop("_seq_indptr"), state.pop("_seq_items"))
        self._set_model_state(state)

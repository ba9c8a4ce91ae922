"""A vocabulary: the map between external ids (strings) and dense integer indices.

Models work on dense indices ``0 .. n-1`` (rows and columns of a sparse matrix, rows of an
embedding table); users and shops speak in their own ids. A :class:`Vocabulary` holds one such
map, with an explicit policy for ids it does not know (LensKit's idea). Lookups are vectorised
through a pandas hash index, so mapping a million ids costs one hash lookup each, not a Python
loop.

>>> vocab = Vocabulary(["u1", "u7", "u3"])
>>> vocab.index(["u3", "u1"]).tolist()
[2, 0]
>>> vocab.index(["u3", "zz"], unknown="ignore").tolist()
[2, -1]
>>> vocab.id_of([1]).tolist()
['u7']
>>> vocab.extend(["u3", "u9"]).to_list()
['u1', 'u7', 'u3', 'u9']
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from aisle.errors import ConfigError, DataError, UnknownIdError

__all__ = ["UnknownPolicy", "Vocabulary"]

#: What :meth:`Vocabulary.index` does with ids it does not know.
UnknownPolicy = Literal["raise", "ignore"]

_HASH_LOOKUP_BELOW = 16
_SHOWN = 5
_FACTORIZE_ABOVE = 4096


def _as_object_array(values: Any) -> npt.NDArray[np.object_]:
    """Ids as a 1-D numpy object array; a single string counts as one id."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        values = [values]
    if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        arr = np.asarray(values, dtype=object)
    elif isinstance(values, np.ndarray):
        arr = values if values.dtype == object else values.astype(object)
    else:
        # fill an object array: np.asarray would make a fixed-width unicode array first,
        # which strips trailing NUL characters and turns tuples into extra dimensions
        seq = list(values)
        arr = np.fromiter(seq, dtype=object, count=len(seq))
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def _check_no_nulls(arr: npt.NDArray[np.object_], what: str) -> None:
    nulls = pd.isna(arr)
    if nulls.any():
        raise DataError(
            f"{what} holds {int(nulls.sum())} missing id(s) (first at position "
            f"{int(np.flatnonzero(nulls)[0])}); ids must be present: drop or fill those rows first"
        )


class Vocabulary:
    """An ordered set of external ids, each mapped to its dense index (its position).

    Args:
        ids: the ids, in index order. Missing ids (None, NaN, NA) are refused.
        duplicates: ``"raise"`` (the default) refuses repeated ids with a
            :class:`~aisle.errors.DataError`; ``"drop"`` keeps the first appearance of each.

    Raises:
        DataError: ids are missing, or repeated while ``duplicates="raise"``.
        ConfigError: ``duplicates`` is not one of the two policies.
    """

    __slots__ = ("_ids", "_index")

    def __init__(
        self,
        ids: Iterable[Hashable] = (),
        *,
        duplicates: Literal["raise", "drop"] = "raise",
    ) -> None:
        if duplicates not in ("raise", "drop"):
            raise ConfigError(f"duplicates must be 'raise' or 'drop', got {duplicates!r}")
        arr = _as_object_array(ids).copy()  # ours alone: it is made read-only below
        _check_no_nulls(arr, "Vocabulary ids")
        index = pd.Index(arr, dtype=object, tupleize_cols=False)
        if not index.is_unique:
            if duplicates == "raise":
                dup = pd.unique(arr[index.duplicated()])
                shown = ", ".join(repr(d) for d in dup[:_SHOWN])
                raise DataError(
                    f"Vocabulary ids must be unique; {len(dup)} id(s) repeat ({shown}"
                    f"{', ...' if len(dup) > _SHOWN else ''}); pass duplicates='drop' to keep "
                    "the first appearance, or use Vocabulary.from_values"
                )
            keep = ~index.duplicated(keep="first")
            arr = arr[keep]
            index = index[keep]
        arr.setflags(write=False)
        self._ids: npt.NDArray[np.object_] = arr
        self._index: pd.Index = index

    # construction -------------------------------------------------------------------------

    @classmethod
    def from_values(cls, values: Iterable[Hashable]) -> Vocabulary:
        """The vocabulary of the distinct values, in order of first appearance.

        Args:
            values: a Series, array or iterable of ids (a column of events, say); repeats are
                expected.

        Returns:
            A vocabulary with one index per distinct value.

        Raises:
            DataError: a value is missing.
        """
        arr = _as_object_array(values)
        _check_no_nulls(arr, "values")
        uniq = pd.unique(arr)
        return cls(np.asarray(uniq, dtype=object))

    @classmethod
    def from_list(cls, ids: list[Any]) -> Vocabulary:
        """Rebuild a vocabulary written by :meth:`to_list` (e.g. read back from JSON)."""
        if not isinstance(ids, list):
            raise DataError(f"Vocabulary.from_list expects a list of ids, got {type(ids).__name__}")
        return cls(ids)

    def to_list(self) -> list[Any]:
        """The ids in index order, as a plain list (JSON-serialisable for string ids)."""
        out: list[Any] = self._ids.tolist()
        return out

    def extend(self, new_ids: Iterable[Hashable]) -> Vocabulary:
        """A new vocabulary with the unseen ``new_ids`` appended (in order of first appearance).

        Indices of the ids already known do not change; ``self`` is left as it is.

        Args:
            new_ids: ids to add; known ids and repeats are skipped.

        Returns:
            The extended vocabulary (``self`` itself when nothing is new).
        """
        arr = _as_object_array(new_ids)
        _check_no_nulls(arr, "new ids")
        fresh = pd.unique(arr[self._lookup(arr) < 0]) if len(arr) else arr
        if len(fresh) == 0:
            return self
        return Vocabulary(np.concatenate([self._ids, np.asarray(fresh, dtype=object)]))

    # lookups ------------------------------------------------------------------------------

    @property
    def ids(self) -> npt.NDArray[np.object_]:
        """The ids in index order (a read-only object array)."""
        return self._ids

    def index(
        self, ids: Iterable[Hashable] | str, *, unknown: UnknownPolicy = "raise"
    ) -> npt.NDArray[np.int64]:
        """The dense indices of ``ids``.

        Args:
            ids: ids to look up (a Series, array or iterable; one string counts as one id).
            unknown: ``"raise"`` fails on ids not in the vocabulary; ``"ignore"`` maps them to
                ``-1``.

        Returns:
            An int64 array of the same length as ``ids``.

        Raises:
            UnknownIdError: some ids are unknown and ``unknown="raise"``; the message gives how
                many and shows up to five of them.
            ConfigError: ``unknown`` is not one of the two policies.
        """
        if unknown not in ("raise", "ignore"):
            raise ConfigError(f"unknown must be 'raise' or 'ignore', got {unknown!r}")
        arr = _as_object_array(ids)
        if len(arr) == 0:
            return np.empty(0, dtype=np.int64)
        if len(arr) > _FACTORIZE_ABOVE:
            # event columns repeat ids: hash each distinct id once, then gather
            local, uniq = pd.factorize(arr, use_na_sentinel=False)
            codes = self._lookup(np.asarray(uniq, dtype=object))[local]
        else:
            codes = self._lookup(arr)
        if unknown == "raise":
            missing = codes < 0
            if missing.any():
                bad = pd.unique(arr[missing])
                shown = ", ".join(repr(b) for b in bad[:_SHOWN])
                raise UnknownIdError(
                    f"{len(bad)} unknown id(s) not in the vocabulary of {len(self)}: {shown}"
                    f"{', ...' if len(bad) > _SHOWN else ''}; pass unknown='ignore' to map "
                    "them to -1"
                )
        return codes

    def id_of(self, indices: Iterable[int] | npt.ArrayLike) -> npt.NDArray[np.object_]:
        """The ids at the dense ``indices``.

        Args:
            indices: integer indices in ``0 .. len(self) - 1``.

        Returns:
            An object array of ids, one per index.

        Raises:
            UnknownIdError: an index is negative or not below ``len(self)``.
        """
        idx = np.asarray(indices)
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.size == 0:
            return np.empty(0, dtype=object)
        if not np.issubdtype(idx.dtype, np.integer):
            raise UnknownIdError(f"indices must be integers, got dtype {idx.dtype}")
        bad = (idx < 0) | (idx >= len(self))
        if bad.any():
            shown = ", ".join(str(int(b)) for b in np.unique(idx[bad])[:_SHOWN])
            raise UnknownIdError(f"{int(bad.sum())} index(es) outside 0..{len(self) - 1}: {shown}")
        out: npt.NDArray[np.object_] = self._ids[idx]
        return out

    def _lookup(self, arr: npt.NDArray[np.object_]) -> npt.NDArray[np.int64]:
        if len(arr) <= _HASH_LOOKUP_BELOW:  # a request's few ids: skip building an Index
            out = np.full(len(arr), -1, dtype=np.int64)
            for i, value in enumerate(arr.tolist()):
                try:
                    loc = self._index.get_loc(value)
                except (KeyError, TypeError):
                    continue
                if isinstance(loc, int):
                    out[i] = loc
            return out
        target = pd.Index(arr, dtype=object, copy=False, tupleize_cols=False)
        return np.asarray(self._index.get_indexer(target), dtype=np.int64)

    # container protocol -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        try:
            return item in self._index
        except TypeError:  # unhashable
            return False

    def __iter__(self) -> Iterator[Any]:
        return iter(self._ids.tolist())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return len(self) == len(other) and bool(np.array_equal(self._ids, other._ids))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(i) for i in self._ids[:3].tolist())
        more = ", ..." if len(self) > 3 else ""
        return f"Vocabulary(n={len(self)}, ids=[{head}{more}])"

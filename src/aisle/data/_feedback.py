"""The implicit-feedback builder: shop events in, one weighted user × item matrix out.

:func:`build_interactions` turns the canonical event log into an :class:`Interactions` object: a
sparse float32 matrix (users × items) with the two :class:`~aisle.data._vocab.Vocabulary` objects
that name its rows and columns. :class:`FeedbackConfig` holds every rule: a weight per event type,
what returns do, how ratings count, recency decay, how repeats combine, k-core filtering and the
confidence scaling weighted models (iALS) use. :func:`fold_in` applies the same rules to the
events of users the model never saw, in the model's item vocabulary.

What each signal says, and how it is biased:

* **view** – plentiful and noisy. Users see what the shop shows them, so views follow placement
  (position bias) and the current recommender (feedback loops); a view is not a preference.
* **click** – a stronger intent than a view but still position-biased; clicks also follow
  attractive thumbnails and titles, not only fit.
* **add_to_cart** – strong intent, but carts are also used as wish lists and for price watching;
  many never convert.
* **purchase** – the strongest positive signal, but sparse, skewed to cheap and popular items,
  and repeated for consumables (a repeat says "replenish", not "recommend more of the same").
* **return** – a negative signal about the purchase it undoes (wrong size, disappointment);
  ``returns="cancel"`` removes that purchase, ``"negative"`` also counts it against the item.
* **search** – says what the user looks for, not which item they want; weight 0 by default.
* **rating** – explicit, but given by a self-selected few, mostly at the extremes, and not always
  after use; low ratings are dislikes, hence the ``rating_threshold``.

The builder is vectorised end to end (factorize, bincount, one CSR construction); a million events
build in about a second on one core.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator
from pydantic import ValidationError as PydanticValidationError

from aisle.data._schema import EVENT_TYPES
from aisle.data._time import TimeLike, timestamps_ns, to_utc_timestamp
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, DataWarning, SchemaError

__all__ = [
    "DEFAULT_WEIGHTS",
    "FeedbackConfig",
    "Interactions",
    "build_interactions",
    "fold_in",
]

#: The default weight of each event type (returns are ruled by ``returns``/``return_weight``).
DEFAULT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
    "rating": 1.0,
    "search": 0.0,
}

_WEIGHTED_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t != "return")
_NS_PER_DAY = 86_400 * 10**9
_REQUIRED = ("user_id", "item_id", "event_type", "timestamp")



# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def _config_error(exc: PydanticValidationError, what: str) -> ConfigError:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return ConfigError(f"invalid {what}: " + "; ".join(parts))


class FeedbackConfig(BaseModel):
    """How events become implicit feedback (frozen; every field has a default).

    Attributes:
        weights: weight per event type. Types absent from the mapping are ignored (weight 0);
            ``"return"`` has no entry here (see ``returns``). Weights must be finite and >= 0.
        returns: ``"cancel"`` – each return removes the weight of one purchase of the same
            user-item (the latest purchase at or before it that no other return removed; a
            return with no such purchase removes nothing), so the purchase part never goes below
            zero; ``"negative"`` – purchases stay and each return adds ``-return_weight``;
            ``"ignore"`` – returns are dropped.
        return_weight: the penalty of one return under ``returns="negative"``.
        rating_threshold: rating events whose ``value`` is below it (or missing) are dropped;
            ``None`` keeps every rating.
        rating_as_weight: a rating's weight is its ``value`` times ``weights["rating"]``
            instead of ``weights["rating"]`` alone.
        half_life_days: recency decay; an event ``age`` days before the reference time weighs
            ``weight * 0.5 ** (age / half_life_days)``. ``None`` turns decay off.
        dedup: how the events of one user-item combine: ``"sum"`` of their weights; ``"max"``,
            the largest single weight (minus return penalties); ``"binary"``, the sign of the
            sum (1, or -1 when return penalties outweigh the rest).
        min_user_events: k-core filter: users with fewer interactions (distinct items with a
            non-zero entry) are removed, repeatedly with ``min_item_events`` until both hold;
            0 turns it off.
        min_item_events: the same for items (distinct users).
        confidence: the scaling :meth:`Interactions.confidence` applies for weighted models:
            ``"none"`` (c = r), ``"linear"`` (c = alpha * r) or ``"log"``
            (c = alpha * log(1 + r / epsilon)).
        alpha: confidence scale.
        epsilon: confidence log scale.

    Raises:
        ConfigError: a field is invalid (the message names the field and what is allowed).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, FiniteFloat] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    returns: Literal["cancel", "negative", "ignore"] = "cancel"
    return_weight: FiniteFloat = Field(5.0, ge=0)
    rating_threshold: FiniteFloat | None = 4.0
    rating_as_weight: bool = False
    half_life_days: FiniteFloat | None = Field(None, gt=0)
    dedup: Literal["sum", "max", "binary"] = "sum"
    min_user_events: int = Field(0, ge=0)
    min_item_events: int = Field(0, ge=0)
    confidence: Literal["none", "linear", "log"] = "none"
    alpha: FiniteFloat = Field(1.0, gt=0)
    epsilon: FiniteFloat = Field(1.0, gt=0)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise _config_error(exc, "FeedbackConfig") from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate a mapping into a config (raising :class:`~aisle.errors.ConfigError`)."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except PydanticValidationError as exc:
            raise _config_error(exc, "FeedbackConfig") from None

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        valid = ", ".join(_WEIGHTED_TYPES)
        for key, weight in value.items():
            if key == "return":
                raise ValueError(
                    "'return' takes no weight here; set returns='cancel'|'negative'|'ignore' "
                    "and return_weight instead"
                )
            if key not in _WEIGHTED_TYPES:
                raise ValueError(f"unknown event type {key!r} in weights; valid: {valid}")
            if weight < 0:
                raise ValueError(
                    f"weight of {key!r} is {weight}; weights must be >= 0 (negative feedback "
                    "comes from returns='negative')"
                )
        return value


# --------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Interactions:
    """A weighted user × item matrix with the vocabularies of its rows and columns.

    Attributes:
        matrix: ``scipy.sparse.csr_array`` of shape ``(len(users), len(items))``, float32,
            sorted indices, no stored zeros.
        users: the vocabulary of the rows.
        items: the vocabulary of the columns.
        config: the rules the matrix was built with.
        reference_time: the time decay was measured from (the latest event by default), or
            ``None`` for an empty event log.
    """

    matrix: sp.csr_array
    users: Vocabulary
    items: Vocabulary
    config: FeedbackConfig = field(default_factory=FeedbackConfig)
    reference_time: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        if self.matrix.shape != (len(self.users), len(self.items)):
            raise DataError(
                f"matrix shape {self.matrix.shape} does not match the vocabularies "
                f"({len(self.users)} users × {len(self.items)} items)"
            )

    @property
    def n_users(self) -> int:
        """Number of rows (users)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of columns (items)."""
        return len(self.items)

    @property
    def nnz(self) -> int:
        """Number of stored (non-zero) user-item entries."""
        return int(self.matrix.nnz)

    @property
    def density(self) -> float:
        """Share of the user × item cells that hold an entry (0.0 for an empty matrix)."""
        cells = self.n_users * self.n_items
        return self.nnz / cells if cells else 0.0

    def user_items(self, user_id: str) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float32]]:
        """The items of one user and their weights, in item-index order.

        Raises:
            UnknownIdError: the user is not in :attr:`users`.
        """
        row = int(self.users.index([user_id])[0])
        start, stop = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        cols = self.matrix.indices[start:stop]
        weights = np.asarray(self.matrix.data[start:stop], dtype=np.float32)
        return self.items.id_of(cols), weights

    def confidence(self) -> sp.csr_array:
        """The matrix scaled as ``config.confidence`` says (a new matrix; this one is kept).

        ``"linear"``: ``alpha * r``; ``"log"``: ``alpha * log(1 + r / epsilon)``, applied to
        ``|r|`` with the sign kept for negative entries; ``"none"``: a copy of the matrix.
        """
        out = self.matrix.copy()
        r = out.data.astype(np.float64)
        cfg = self.config
        if cfg.confidence == "linear":
            c = cfg.alpha * r
        elif cfg.confidence == "log":
            c = np.sign(r) * cfg.alpha * np.log1p(np.abs(r) / cfg.epsilon)
        else:
            c = r
        out.data = c.astype(np.float32)
        out.eliminate_zeros()
        return out

    def binarize(self) -> Interactions:
        """A copy whose positive entries are 1 and whose other entries are dropped.

        The config is kept as it was (it records how the weights were built).
        """
        m = self.matrix.copy()
        m.data = (m.data > 0).astype(np.float32)
        m.eliminate_zeros()
        return Interactions(m, self.users, self.items, self.config, self.reference_time)

    def to_frame(self) -> pd.DataFrame:
        """The stored entries as a frame with ``user_id``, ``item_id`` and ``weight``."""
        coo = self.matrix.tocoo()
        return pd.DataFrame(
            {
                "user_id": pd.array(self.users.id_of(coo.row), dtype="string"),
                "item_id": pd.array(self.items.id_of(coo.col), dtype="string"),
                "weight": coo.data.astype(np.float32),
            }
        )

    def __repr__(self) -> str:
        return (
            f"Interactions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}, "
            f"density={self.density:.3g})"
        )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_columns(events: pd.DataFrame) -> None:
    if not isinstance(events, pd.DataFrame):
        raise DataError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in _REQUIRED if c not in events.columns]
    if missing:
        raise SchemaError(
            f"events lack the column(s) {', '.join(missing)}; canonical events have "
            f"{', '.join(_REQUIRED)} (see aisle.data.conform_events)"
        )
    for column in ("user_id", "item_id"):
        n_null = int(events[column].isna().sum())
        if n_null:
            raise DataError(
                f"column '{column}' has {n_null} missing value(s); every event needs one "
                "(drop those rows, or validate with aisle.data.conform_events)"
            )


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.as_unit("ns").value)


def _as_vocab(value: Vocabulary | Iterable[str] | None) -> Vocabulary | None:
    if value is None or isinstance(value, Vocabulary):
        return value
    return Vocabulary(value)


def _cancelled_purchases(
    key: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    is_return: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Which purchases a later return of the same pair cancels (LIFO matching).

    ``key``/``ts``/``is_return`` describe purchase and return events only (source order). A
    return cancels the latest not-yet-cancelled purchase of its pair at or before it; returns
    with nothing to cancel are ignored. On a tie in time, purchases come first.

    Done without a Python loop: per pair, walk +1 for a purchase and -1 for a return, reflected
    at zero (ignored returns); the depth after a purchase is its stack level, and the purchase
    is cancelled exactly when the depth later falls below that level.
    """
    n = len(key)
    order = np.lexsort((np.arange(n), is_return, ts, key))
    k = key[order]
    step = np.where(is_return[order], -1, 1).astype(np.int64)
    frame = pd.DataFrame({"k": k, "s": step})
    walk = frame.groupby("k", sort=False)["s"].cumsum().to_numpy()
    low = pd.Series(walk).groupby(k, sort=False).cummin().to_numpy()
    depth = walk - np.minimum(low, 0)
    # minimum depth strictly after each position, within the pair
    rev = depth[::-1]
    suffix = pd.Series(rev).groupby(k[::-1], sort=False).cummin().to_numpy()[::-1]
    after = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = k[1:] == k[:-1]
    after[:-1] = np.where(same_next[:-1], suffix[1:], after[:-1])
    cancelled_sorted = (step > 0) & (after < depth)
    out = np.zeros(n, dtype=bool)
    out[order] = cancelled_sorted
    return out


def _kcore(
    matrix: sp.csr_array, min_users: int, min_items: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Rows and columns kept by iterative k-core filtering on the stored entries."""
    n_rows, n_cols = matrix.shape
    keep_r = np.ones(n_rows, dtype=bool)
    keep_c = np.ones(n_cols, dtype=bool)
    if min_users <= 0 and min_items <= 0:
        return keep_r, keep_c
    ind = sp.csr_array(
        (np.ones(matrix.nnz, dtype=np.float64), matrix.indices, matrix.indptr), shape=matrix.shape
    )
    ind_t = ind.T.tocsr()
    while True:
        row_counts = ind @ keep_c.astype(np.float64)
        new_r = keep_r & (row_counts >= min_users)
        col_counts = ind_t @ new_r.astype(np.float64)
        new_c = keep_c & (col_counts >= min_items)
        if np.array_equal(new_r, keep_r) and np.array_equal(new_c, keep_c):
            return keep_r, keep_c
        keep_r, keep_c = new_r, new_c


def _csr_from_keys(
    keys: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n_rows: int,
    n_cols: int,
) -> sp.csr_array:
    """A CSR matrix from sorted unique ``row * n_cols + col`` keys, dropping zeros."""
    data = values.astype(np.float32)
    nonzero = data != 0
    keys, data = keys[nonzero], data[nonzero]
    rows = keys // max(n_cols, 1)
    cols = keys - rows * n_cols
    idx_dtype = np.int32 if max(n_rows, n_cols, len(keys)) < 2**31 - 1 else np.int64
    indptr = np.zeros(n_rows + 1, dtype=idx_dtype)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    m = sp.csr_array((data, cols.astype(idx_dtype), indptr), shape=(n_rows, n_cols))
    m.has_sorted_indices = True
    return m


def _empty_csr(n_rows: int, n_cols: int) -> sp.csr_array:
    return sp.csr_array((n_rows, n_cols), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# the builder
# --------------------------------------------------------------------------------------------


@dataclass
class _Built:
    matrix: sp.csr_array
    users: Vocabulary
    items: Vocabulary
    reference_time: pd.Timestamp | None
    notes: list[str]


def _build(
    events: pd.DataFrame,
    config: FeedbackConfig,
    *,
    users: Vocabulary | None,
    items: Vocabulary | None,
    reference_time: TimeLike | None,
    unknown_what: str,
    kcore: bool,
) -> _Built:
    _check_columns(events)
    notes: list[str] = []
    ts_all = timestamps_ns(events)
    if reference_time is not None:
        ref: pd.Timestamp | None = to_utc_timestamp(reference_time, "reference_time")
    elif len(ts_all):
        ref = pd.Timestamp(int(ts_all.max()), unit="ns", tz="UTC")
    else:
        ref = None

    n = len(events)
    keep = np.ones(n, dtype=bool)

    # 1. ids against given vocabularies
    u_codes: npt.NDArray[np.int64] | None = None
    i_codes: npt.NDArray[np.int64] | None = None
    if users is not None:
        u_codes = users.index(events["user_id"], unknown="ignore")
        keep &= u_codes >= 0
    if items is not None:
        i_codes = items.index(events["item_id"], unknown="ignore")
        keep &= i_codes >= 0
    n_unknown = int(n - keep.sum())
    if n_unknown:
        notes.append(f"{n_unknown} of {n} events {unknown_what} were dropped")

    # 2. per-event weights, through one lookup table per event type (last entry: missing type)
    type_codes, type_names = pd.factorize(events["event_type"])
    names = [str(t) for t in type_names]
    strange = [t for t in names if t not in EVENT_TYPES]
    n_strange = int((type_codes < 0).sum()) + sum(
        int((type_codes == names.index(t)).sum()) for t in strange
    )
    if n_strange:
        shown = ", ".join(repr(t) for t in strange[:5]) or "missing"
        notes.append(
            f"{n_strange} events of unknown type ({shown}) were ignored; "
            f"valid types: {', '.join(EVENT_TYPES)}"
        )
    weight = np.array([config.weights.get(t, 0.0) for t in [*names, ""]])[type_codes]
    is_return = np.array([t == "return" for t in [*names, ""]])[type_codes]
    is_purchase = np.array([t == "purchase" for t in [*names, ""]])[type_codes]
    is_rating = np.array([t == "rating" for t in [*names, ""]])[type_codes]

    if is_rating.any() and (config.rating_threshold is not None or config.rating_as_weight):
        if "value" not in events.columns:
            raise SchemaError("rating events need the column 'value' (the rating)")
        rating_rows = np.flatnonzero(is_rating)
        rv = events["value"].to_numpy(dtype=np.float64, na_value=np.nan)[rating_rows]
        no_value = np.isnan(rv)
        if no_value.any():
            notes.append(f"{int(no_value.sum())} rating events without a value were dropped")
        drop = no_value.copy()
        if config.rating_threshold is not None:
            drop |= rv < config.rating_threshold
        if config.rating_as_weight:
            weight[rating_rows] = np.where(no_value, 0.0, rv) * weight[rating_rows]
        keep[rating_rows[drop]] = False

    if config.returns == "ignore":
        keep &= ~is_return & (weight != 0)
    else:
        keep &= (weight != 0) | is_return
        if config.returns == "negative":
            weight[is_return] = -config.return_weight

    # 3. recency decay
    if config.half_life_days is not None and ref is not None and keep.any():
        age_days = (_ns(ref) - ts_all) / _NS_PER_DAY
        future = keep & (age_days < 0)
        if future.any():
            notes.append(
                f"{int(future.sum())} events are later than reference_time {ref}; "
                "they were weighted as if at the reference time"
            )
        weight = weight * np.exp2(-np.maximum(age_days, 0.0) / config.half_life_days)

    rows = np.flatnonzero(keep)
    weight, is_return, is_purchase = weight[rows], is_return[rows], is_purchase[rows]

    # 4. dense codes (given vocabularies, or first appearance among these events)
    if u_codes is not None:
        u = u_codes[rows]
        u_names = None
    else:
        u_raw, u_uniq = pd.factorize(events["user_id"].iloc[rows])
        u, u_names = np.asarray(u_raw, dtype=np.int64), np.asarray(u_uniq, dtype=object)
    if i_codes is not None:
        i = i_codes[rows]
        i_names = None
    else:
        i_raw, i_uniq = pd.factorize(events["item_id"].iloc[rows])
        i, i_names = np.asarray(i_raw, dtype=np.int64), np.asarray(i_uniq, dtype=object)

    # 5. returns cancel purchases
    if config.returns == "cancel" and is_return.any():
        width = len(items) if items is not None else len(i_names) if i_names is not None else 0
        key = u * max(width, 1) + i
        pr_rows = np.flatnonzero(is_purchase | is_return)
        sub = pr_rows[np.isin(key[pr_rows], np.unique(key[is_return]))]
        cancelled = np.zeros(len(rows), dtype=bool)
        cancelled[sub] = _cancelled_purchases(key[sub], ts_all[rows][sub], is_return[sub])
        stay = ~(cancelled | is_return)
        weight, u, i, is_return = weight[stay], u[stay], i[stay], is_return[stay]

    # 6. vocabularies (codes renumbered by first appearance among the events kept)
    if users is not None:
        users_v = users
    else:
        assert u_names is not None
        firsts = u[_first(u)]
        users_v = Vocabulary(u_names[firsts])
        u = _renumber(u, firsts)
    if items is not None:
        items_v = items
    else:
        assert i_names is not None
        firsts = i[_first(i)]
        items_v = Vocabulary(i_names[firsts])
        i = _renumber(i, firsts)
    n_u, n_i = len(users_v), len(items_v)

    # 7. repeated user-item events combine
    if len(u) == 0:
        matrix = _empty_csr(n_u, n_i)
    else:
        uniq, inv = np.unique(u * max(n_i, 1) + i, return_inverse=True)
        m = len(uniq)
        pos = ~is_return
        total = np.asarray(np.bincount(inv[pos], weights=weight[pos], minlength=m), np.float64)
        penalty = np.asarray(np.bincount(inv[~pos], weights=-weight[~pos], minlength=m), np.float64)
        values: npt.NDArray[np.float64]
        if config.dedup == "sum":
            values = total - penalty
        elif config.dedup == "max":
            top = np.full(m, -np.inf)
            np.maximum.at(top, inv[pos], weight[pos])
            top[np.isneginf(top)] = 0.0
            values = top - penalty
        else:
            values = np.sign(total - penalty).astype(np.float64)
        matrix = _csr_from_keys(uniq, values, n_u, n_i)

    # 8. k-core
    if kcore and (config.min_user_events > 0 or config.min_item_events > 0):
        keep_r, keep_c = _kcore(matrix, config.min_user_events, config.min_item_events)
        new_r = np.cumsum(keep_r) - 1 if users is None else np.arange(n_u)
        new_c = np.cumsum(keep_c) - 1 if items is None else np.arange(n_i)
        if users is None:
            users_v = Vocabulary(users_v.ids[keep_r])
        if items is None:
            items_v = Vocabulary(items_v.ids[keep_c])
        coo = matrix.tocoo()
        mask = keep_r[coo.row] & keep_c[coo.col]
        n_c = len(items_v)
        keys = new_r[coo.row[mask]].astype(np.int64) * max(n_c, 1) + new_c[coo.col[mask]]
        matrix = _csr_from_keys(keys, coo.data[mask].astype(np.float64), len(users_v), n_c)

    return _Built(matrix, users_v, items_v, ref, notes)


def _first(codes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Positions of the first appearance of each code, in order of first appearance."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(codes, return_index=True)
    return np.sort(first)


def _renumber(codes: npt.NDArray[np.int64], firsts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Map ``codes`` onto ``0..len(firsts)-1``, ``firsts[k]`` becoming ``k``."""
    if len(codes) == 0:
        return codes
    table = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    table[firsts] = np.arange(len(firsts), dtype=np.int64)
    out: npt.NDArray[np.int64] = table[codes]
    return out


def _warn(notes: list[str], stacklevel: int) -> None:
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=stacklevel + 1)


def build_interactions(
    events: pd.DataFrame,
    config: FeedbackConfig | None = None,
    *,
    users: Vocabulary | Iterable[str] | None = None,
    items: Vocabulary | Iterable[str] | None = None,
    reference_time: TimeLike | None = None,
) -> Interactions:
    """Build the weighted user × item matrix of an event log.

    Args:
        events: canonical events (``user_id``, ``item_id``, ``event_type``, ``timestamp`` and,
            for ratings, ``value``).
        config: the weighting rules; the defaults of :class:`FeedbackConfig` when ``None``.
        users: fix the rows to this vocabulary (e.g. the training users when building a test
            matrix); events of other users are dropped with a
            :class:`~aisle.errors.DataWarning` giving the count. By default the rows are the
            users of the events that carry weight, in order of first appearance.
        items: the same for the columns.
        reference_time: the time recency decay is measured from; the latest event by default.
            A naive time is read as UTC.

    Returns:
        The :class:`Interactions`. Given vocabularies keep their size (k-core filtering then
        empties rows or columns instead of removing them).

    Raises:
        SchemaError: a required column is missing or mistyped.
        DataError: timestamps are missing.
        ConfigError: ``reference_time`` is not a time.
    """
    cfg = config if config is not None else FeedbackConfig()
    if not isinstance(cfg, FeedbackConfig):
        raise ConfigError(f"config must be a FeedbackConfig, got {type(cfg).__name__}")
    built = _build(
        events,
        cfg,
        users=_as_vocab(users),
        items=_as_vocab(items),
        reference_time=reference_time,
        unknown_what="with a user or item id outside the given vocabularies",
        kcore=True,
    )
    _warn(built.notes, stacklevel=2)
    return Interactions(built.matrix, built.users, built.items, cfg, built.reference_time)


def fold_in(
    events: pd.DataFrame,
    target: Interactions | Vocabulary,
    config: FeedbackConfig | None = None,
    *,
    users: Vocabulary | Iterable[str] | None = None,
    reference_time: TimeLike | None = None,
) -> sp.csr_array:
    """Rows for users a model never saw, from their raw events, in the model's item vocabulary.

    The same rules as :func:`build_interactions` apply (without k-core filtering), so a user
    who was in the training data gets back exactly their training row.

    Args:
        events: the events of the new user(s), canonical columns.
        target: the training :class:`Interactions` (its items, config and reference time are
            used) or just the item :class:`~aisle.data._vocab.Vocabulary` of the model.
        config: the weighting rules; ``target.config`` (or the defaults) when ``None``.
        users: the users to return rows for, in this order; the users of ``events`` in order
            of first appearance by default (a user without usable events gets an empty row).
        reference_time: the decay reference; by default the later of the training reference
            time and the latest of these events.

    Returns:
        A float32 ``csr_array`` of shape ``(n_users, len(items))``. Events on items the model
        does not know are ignored, and their count is reported with a
        :class:`~aisle.errors.DataWarning`.
    """
    if isinstance(target, Interactions):
        items_v = target.items
        cfg = config if config is not None else target.config
        base_ref = target.reference_time
    elif isinstance(target, Vocabulary):
        items_v = target
        cfg = config if config is not None else FeedbackConfig()
        base_ref = None
    else:
        raise ConfigError(
            f"target must be Interactions or an item Vocabulary, got {type(target).__name__}"
        )
    _check_columns(events)
    users_v = _as_vocab(users)
    if users_v is None:
        users_v = Vocabulary.from_values(events["user_id"]) if len(events) else Vocabulary()
    if reference_time is None and base_ref is not None:
        ts = timestamps_ns(events)
        latest = int(ts.max()) if len(ts) else _ns(base_ref)
        reference_time = max(base_ref, pd.Timestamp(latest, unit="ns", tz="UTC"))
    built = _build(
        events,
        cfg,
        users=users_v,
        items=items_v,
        reference_time=reference_time,
        unknown_what="on items unknown to the model (or of users not asked for)",
        kcore=False,
    )
    _warn(built.notes, stacklevel=2)
    return built.matrix

"""Deterministic assignment: salted hashes of the randomization unit, layers, holdout.

The bucket of a unit under a salt is::

    h(unit)        = first 8 bytes of sha256(utf-8 unit id), big-endian
    h(salt)        = first 8 bytes of sha256(utf-8 salt), big-endian
    bucket(s, u)   = splitmix64(h(u) XOR h(s)) mod 10,000

Both halves are fully specified (no Python ``hash``, no library internals), so the same salt
gives the same assignment across restarts, machines and versions; the unit half can be cached
(``unit_hashes``) and reused under many salts, which keeps re-randomization fast.

Three hashes decide where a unit goes:

1. the global holdout (salt ``holdout/<salt>``): units below ``fraction × 10,000`` are in no
   experiment;
2. the layer (salt ``layer/<layer>``): every experiment of a layer owns a disjoint bucket range,
   so experiments in one layer are mutually exclusive, and different layers use independent
   hashes, so they are orthogonal;
3. the variant (salt ``<experiment salt>/variant``): the weights split the 10,000 buckets.

When the unit is the user, all of a user's sessions land in one variant.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from aisle.errors import ConfigError, NotFoundError

from ._spec import N_BUCKETS, ExperimentSpec, HoldoutSpec

__all__ = [
    "Assigner",
    "VariantAssignment",
    "allocate_buckets",
    "assign_variants",
    "bucket_of",
    "salt_hash",
    "unit_hashes",
    "variant_index",
]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _ids(unit_ids: ArrayLike | Iterable[object]) -> list[str]:
    if isinstance(unit_ids, str):
        return [unit_ids]
    if isinstance(unit_ids, np.ndarray):
        unit_ids = unit_ids.ravel()
    tolist = getattr(unit_ids, "tolist", None)
    values: Iterable[object] = tolist() if callable(tolist) else unit_ids  # type: ignore[assignment]
    return [u if isinstance(u, str) else str(u) for u in values]


def unit_hashes(unit_ids: ArrayLike | Iterable[object]) -> NDArray[np.uint64]:
    """The unit half of the hash: the first 8 bytes of sha256 of each id, as uint64.

    Args:
        unit_ids: unit ids (converted with ``str``).

    Returns:
        One uint64 per id; cache it to assign the same units under many salts.
    """
    sha = hashlib.sha256
    raw = b"".join(sha(u.encode("utf-8")).digest()[:8] for u in _ids(unit_ids))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def salt_hash(salt: str) -> np.uint64:
    """The salt half of the hash: the first 8 bytes of sha256 of the salt, as uint64."""
    return np.uint64(int.from_bytes(hashlib.sha256(salt.encode("utf-8")).digest()[:8], "big"))


def _splitmix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def bucket_of(
    salt: str,
    unit_ids: ArrayLike | None = None,
    *,
    hashes: NDArray[np.uint64] | None = None,
    n_buckets: int = N_BUCKETS,
) -> NDArray[np.int64]:
    """The bucket of each unit under ``salt``, in ``[0, n_buckets)``.

    Args:
        salt: the salt.
        unit_ids: unit ids; or give their precomputed ``hashes`` (from :func:`unit_hashes`).
        hashes: precomputed unit hashes.
        n_buckets: the number of buckets.

    Returns:
        One bucket per unit.
    """
    if hashes is None:
        if unit_ids is None:
            raise ConfigError("give unit_ids or hashes")
        hashes = unit_hashes(unit_ids)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(np.asarray(hashes, dtype=np.uint64) ^ salt_hash(salt))
    return (mixed % np.uint64(n_buckets)).astype(np.int64)


def allocate_buckets(spec: ExperimentSpec, existing: Sequence[ExperimentSpec]) -> tuple[int, int]:
    """The first free bucket range of ``spec``'s layer wide enough for its allocation.

    Args:
        spec: the new experiment.
        existing: experiments already defined (only those in the same layer matter).

    Returns:
        ``(start, end)``.

    Raises:
        ConfigError: if the layer has no free range that wide.
    """
    need = spec.n_allocated_buckets
    taken = sorted(
        e.bucket_range
        for e in existing
        if e.layer == spec.layer and e.bucket_range is not None and e.name != spec.name
    )
    start = 0
    for lo, hi in taken:
        if lo - start >= need:
            return start, start + need
        start = max(start, hi)
    if N_BUCKETS - start >= need:
        return start, start + need
    free = N_BUCKETS - sum(hi - lo for lo, hi in taken)
    raise ConfigError(
        f"layer {spec.layer!r} has no free range of {need} buckets ({spec.allocation:.0%} of "
        f"traffic) for experiment {spec.name!r}: {free} buckets are free in total. Lower the "
        "allocation, stop an experiment of the layer, or use another layer (orthogonal)."
    )


@dataclass(frozen=True)
class VariantAssignment:
    """Where one unit goes in one experiment (what the recommendation service asks for).

    Attributes:
        experiment: the experiment's name.
        unit_id: the unit.
        variant: the arm, or ``None`` when the unit is not in the experiment.
        model_version: the model version of the arm (``None``: the default model).
        reason: ``assigned``, ``holdout`` (global holdout) or ``not_allocated`` (outside
            the experiment's bucket range).
    """

    experiment: str
    unit_id: str
    variant: str | None
    model_version: str | None
    reason: str


def _variant_edges(spec: ExperimentSpec) -> tuple[NDArray[np.int64], list[str]]:
    w = np.array([v.weight for v in spec.variants], dtype=np.float64)
    edges = np.round(np.cumsum(w) / w.sum() * N_BUCKETS).astype(np.int64)
    edges[-1] = N_BUCKETS
    return edges, [v.name for v in spec.variants]


def variant_index(
    spec: ExperimentSpec, hashes: NDArray[np.uint64], *, holdout: HoldoutSpec | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The core of :func:`assign_variants` on precomputed unit hashes.

    Returns:
        ``(arm, bucket, reason)``: the arm's index in ``spec.variants`` (``-1`` when not in
        the experiment), the variant bucket, and the reason code (0 assigned, 1 holdout,
        2 not allocated).
    """
    h = np.asarray(hashes, dtype=np.uint64)
    reason = np.zeros(len(h), dtype=np.int64)
    if holdout is not None and holdout.fraction > 0:
        held = bucket_of(f"holdout/{holdout.salt}", hashes=h) < round(holdout.fraction * N_BUCKETS)
        reason[held] = 1
    lo, hi = spec.bucket_range if spec.bucket_range is not None else (0, spec.n_allocated_buckets)
    if (lo, hi) != (0, N_BUCKETS):
        layer_b = bucket_of(f"layer/{spec.layer}", hashes=h)
        reason[((layer_b < lo) | (layer_b >= hi)) & (reason == 0)] = 2
    vb = bucket_of(f"{spec.effective_salt}/variant", hashes=h)
    edges, _ = _variant_edges(spec)
    arm = np.searchsorted(edges, vb, side="right").astype(np.int64)
    arm[reason != 0] = -1
    return arm, vb, reason


def assign_variants(
    spec: ExperimentSpec,
    unit_ids: ArrayLike,
    *,
    holdout: HoldoutSpec | None = None,
    hashes: NDArray[np.uint64] | None = None,
) -> pd.DataFrame:
    """Assign units to the arms of one experiment.

    Args:
        spec: the experiment (with its ``bucket_range``; ``None`` means the first
            ``allocation`` share of its layer).
        unit_ids: the units.
        holdout: the global holdout, if any.
        hashes: precomputed :func:`unit_hashes` of ``unit_ids`` (for speed).

    Returns:
        Columns ``unit_id``, ``variant`` (missing when not in the experiment), ``reason``
        (``assigned``, ``holdout``, ``not_allocated``) and ``bucket`` (the variant bucket).
    """
    ids = _ids(unit_ids)
    h = unit_hashes(ids) if hashes is None else np.asarray(hashes, dtype=np.uint64)
    if len(h) != len(ids):
        raise ConfigError(f"{len(h)} hashes for {len(ids)} unit ids")
    arm_index, vb, reason_code = variant_index(spec, h, holdout=holdout)
    names = np.asarray([v.name for v in spec.variants] + [None], dtype=object)
    reason = np.asarray(["assigned", "holdout", "not_allocated"], dtype=object)[reason_code]
    variant = pd.array(names[arm_index], dtype="str")
    return pd.DataFrame(
        {
            "unit_id": pd.array(ids, dtype="str"),
            "variant": variant,
            "reason": pd.array(reason, dtype="str"),
            "bucket": vb,
        }
    )


class Assigner:
    """Assignment for a set of experiments and a global holdout (offline and for serving).

    Args:
        experiments: the experiments (their bucket ranges must not overlap within a layer).
        holdout: the global holdout, if any.

    Raises:
        ConfigError: if two experiments of one layer overlap, or names repeat.

    Example:
        >>> spec = ExperimentSpec(name="demo")
        >>> Assigner([spec]).variant_for("u000042", "demo").variant in {"control", "treatment"}
        True
    """

    def __init__(
        self, experiments: Sequence[ExperimentSpec], holdout: HoldoutSpec | None = None
    ) -> None:
        self.experiments = {e.name: e for e in experiments}
        self.holdout = holdout
        if len(self.experiments) != len(experiments):
            raise ConfigError("experiment names must be unique")
        _check_exclusive(list(self.experiments.values()))

    def assign(self, experiment: str, unit_ids: ArrayLike) -> pd.DataFrame:
        """Assign units to ``experiment``'s arms; see :func:`assign_variants`."""
        return assign_variants(self._spec(experiment), unit_ids, holdout=self.holdout)

    def variant_for(self, unit_id: str, experiment: str) -> VariantAssignment:
        """Where ``unit_id`` goes in ``experiment``, with the arm's model version."""
        spec = self._spec(experiment)
        row = assign_variants(spec, [unit_id], holdout=self.holdout).iloc[0]
        variant = None if pd.isna(row["variant"]) else str(row["variant"])
        versions = {v.name: v.model_version for v in spec.variants}
        return VariantAssignment(
            experiment=experiment,
            unit_id=str(unit_id),
            variant=variant,
            model_version=versions.get(variant) if variant else None,
            reason=str(row["reason"]),
        )

    def variants_for(self, unit_id: str) -> dict[str, VariantAssignment]:
        """The unit's arm in every experiment it is in (at most one per layer)."""
        out = {}
        for name in self.experiments:
            got = self.variant_for(unit_id, name)
            if got.variant is not None:
                out[name] = got
        return out

    def _spec(self, name: str) -> ExperimentSpec:
        try:
            return self.experiments[name]
        except KeyError:
            raise NotFoundError(
                f"no experiment {name!r}; known: {', '.join(sorted(self.experiments)) or 'none'}"
            ) from None


def _check_exclusive(specs: list[ExperimentSpec]) -> None:
    by_layer: dict[str, list[tuple[int, int, str]]] = {}
    for s in specs:
        lo, hi = s.bucket_range if s.bucket_range is not None else (0, s.n_allocated_buckets)
        by_layer.setdefault(s.layer, []).append((lo, hi, s.name))
    for layer, ranges in by_layer.items():
        ranges.sort()
        for (_, hi, a), (lo, _, b) in itertools.pairwise(ranges):
            if lo < hi:
                raise ConfigError(
                    f"experiments {a!r} and {b!r} overlap in layer {layer!r}; experiments of "
                    "one layer must own disjoint bucket ranges (create them through the store, "
                    "which allocates free ranges)"
                )

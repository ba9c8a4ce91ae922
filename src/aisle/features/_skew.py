"""Training-serving skew: do the online values equal the offline recomputation?

:func:`validate_skew` samples entities active before ``as_of``, reads their features from the
online store as of that time, recomputes them from the offline event log as of the same time
(the point-in-time path used for training sets) and reports the mismatch rate per feature. It
raises :class:`SkewError` when any feature's rate exceeds the threshold.

The two paths share only the feature formulas; the windowing differs (tiles in the online
store, a range join over raw events offline), so a tiling bug, a window computed in local time,
a dropped or doubled event, or a stale materialization shows up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aisle.errors import DataError

from ._aggregates import to_ns
from ._definitions import EmbeddingView, FeatureView
from ._offline import OfflineStore
from ._online import OnlineStore

__all__ = ["FeatureSkew", "SkewError", "SkewReport", "validate_skew"]


@dataclass(frozen=True)
class FeatureSkew:
    """Mismatches of one feature.

    Attributes:
        name: the feature.
        compared: entities compared.
        mismatches: entities whose online and offline values differ beyond the tolerance.
        examples: up to five ``{"entity", "online", "offline"}`` mismatches.
    """

    name: str
    compared: int
    mismatches: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """The share of compared entities that mismatch."""
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewReport:
    """The skew of one view as of one time.

    Attributes:
        view: the view's name.
        version: its registry version.
        as_of: the time compared (epoch ns).
        n_entities: entities sampled.
        threshold: the largest acceptable mismatch rate per feature.
        features: per-feature results, in the view's order.
    """

    view: str
    version: int | None
    as_of: int
    n_entities: int
    threshold: float
    features: list[FeatureSkew]

    @property
    def failed(self) -> list[FeatureSkew]:
        """Features whose mismatch rate exceeds the threshold."""
        return [f for f in self.features if f.rate > self.threshold]

    @property
    def ok(self) -> bool:
        """No feature exceeds the threshold."""
        return not self.failed

    @property
    def max_rate(self) -> float:
        """The worst feature's mismatch rate."""
        return max((f.rate for f in self.features), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "view": self.view, "version": self.version,
            "as_of": pd.Timestamp(self.as_of, tz="UTC").isoformat(),
            "n_entities": self.n_entities, "threshold": self.threshold, "ok": self.ok,
            "max_mismatch_rate": self.max_rate,
            "features": [
                {"name": f.name, "compared": f.compared, "mismatches": f.mismatches, "rate": f.rate,
                 "examples": f.examples}
                for f in self.features
            ],
        }

    def describe(self) -> str:
        """One line per failing feature, worst first."""
        worst = sorted(self.failed, key=lambda f: -f.rate)
        lines = [
            f"view {self.view!r} (v{self.version}): {len(worst)} of {len(self.features)} features exceed "
            f"the {self.threshold:.1%} mismatch threshold as of {pd.Timestamp(self.as_of, tz='UTC').isoformat()}"
        ]
        for f in worst[:10]:
            ex = f.examples[0] if f.examples else {}
            lines.append(
                f"  - {f.name}: {f.rate:.1%} of {f.compared} entities differ "
                f"(e.g. {ex.get('entity')}: online {ex.get('online')}, offline {ex.get('offline')})"
            )
        return "\n".join(lines)


class SkewError(DataError):
    """Online feature values disagree with the offline recomputation beyond the threshold.

    ``reports`` holds every view's report (failing or not).
    """

    def __init__(self, reports: list[SkewReport]) -> None:
        self.reports = reports
        failing = [r for r in reports if not r.ok]
        text = "\n".join(r.describe() for r in failing)
        super().__init__(
            f"training-serving skew detected:\n{text}\nCheck that the stream and the batch use the "
            "same definitions and clock (UTC), then rematerialize: `aisle features materialize`."
        )


def _json_value(v: float) -> float | None:
    return None if v != v else float(v)


def validate_skew(
    view: FeatureView | EmbeddingView,
    online: OnlineStore,
    offline: OfflineStore,
    *,
    as_of: Any = None,
    sample: int = 200,
    seed: int = 0,
    threshold: float = 0.01,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    entities: list[tuple[str, ...]] | None = None,
    raise_on_failure: bool = True,
) -> SkewReport:
    """Compare online values with the offline recomputation as of the same time.

    Args:
        view: the view to check.
        online: the store serving it.
        offline: the event log it was built from.
        as_of: the time to compare at; default: just after the latest event the online state
            holds (so both sides see the same events).
        sample: entities to sample (active within the view's TTL before ``as_of``).
        seed: the sampling seed.
        threshold: the largest acceptable mismatch rate of any feature.
        rtol: relative tolerance of a value match.
        atol: absolute tolerance of a value match.
        entities: compare these entity keys instead of a sample.
        raise_on_failure: raise :class:`SkewError` when a feature exceeds the threshold.

    Returns:
        The report.

    Raises:
        SkewError: a feature's mismatch rate exceeds ``threshold`` (with ``raise_on_failure``).
    """
    if as_of is None and isinstance(view, FeatureView):
        latest = online.watermarks(view)["latest"]
        if latest is None:
            latest = offline.stats()["max_ts_ns"]
        as_of_ns = int(latest) + 1 if latest is not None else to_ns(pd.Timestamp.now(tz="UTC"))
    else:
        as_of_ns = to_ns(as_of) if as_of is not None else to_ns(pd.Timestamp.now(tz="UTC"))
    if isinstance(view, EmbeddingView):
        keys_all, _ = offline.embeddings(view)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(keys_all), size=min(sample, len(keys_all)), replace=False))
        ents = entities if entities is not None else [keys_all[i] for i in pick]
    else:
        ents = entities if entities is not None else offline.entity_sample(view, as_of_ns, sample, seed=seed)
    keys = [e[0] if len(e) == 1 else e for e in ents]
    frame = online.read(view, keys, as_of=as_of_ns)
    labels = pd.DataFrame([list(e) for e in ents], columns=list(view.entity.keys))
    labels["timestamp"] = pd.Timestamp(as_of_ns, tz="UTC")
    names = frame.names
    offline_values = (
        offline.training_set(view, labels)[names].to_numpy(dtype=float)
        if ents else np.zeros((0, len(names)))
    )
    online_values = frame.values
    close = np.isclose(online_values, offline_values, rtol=rtol, atol=atol, equal_nan=True)
    features = []
    for j, name in enumerate(names):
        bad = np.flatnonzero(~close[:, j])
        examples = [
            {"entity": frame.keys[i], "online": _json_value(online_values[i, j]), "offline": _json_value(offline_values[i, j])}
            for i in bad[:5]
        ]
        features.append(FeatureSkew(name, len(ents), int(bad.size), examples))
    report = SkewReport(view.name, view.version, as_of_ns, len(ents), threshold, features)
    if raise_on_failure and not report.ok:
        raise SkewError([report])
    return report

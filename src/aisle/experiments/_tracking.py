"""Tracking consistency: event volumes per event type and arm, compared like an SRM check.

A tracking bug that touches one arm only (an event that stops firing, or fires twice) biases
every metric built on that event, and no significance test notices. The check compares, per
event type, the events per exposed unit in each arm with control, and the share of
duplicated events (same unit, item, type and second). A missing event type, a volume ratio
beyond the tolerance, or a jump in duplicates is a mismatch, and a mismatch blocks the
verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["TrackingResult", "tracking_check"]


@dataclass(frozen=True)
class TrackingResult:
    """The tracking-consistency check.

    Attributes:
        rows: per event type and arm: ``n_events``, ``per_unit``, ``ratio_to_control``,
            ``duplicate_share`` and ``status`` (``ok``, ``missing``, ``volume``,
            ``duplicates``, ``too_few``).
        passed: whether no event type mismatches.
        problems: one sentence per mismatch.
        sample_fraction: the share of units the counts come from (1.0: every unit).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = True
    problems: list[str] = field(default_factory=list)
    sample_fraction: float = 1.0


def tracking_check(
    counts: pd.DataFrame,
    exposed: Mapping[str, int],
    *,
    control: str,
    tolerance: float = 10.0,
    duplicate_tolerance: float = 0.05,
    min_events: int = 30,
) -> TrackingResult:
    """Compare event volumes per event type between each arm and control.

    Args:
        counts: ``event_type``, ``variant``, ``n_events``, ``n_duplicates`` and optionally
            ``n_units`` (exposed units behind the counts, when they come from a sample), from
            :func:`aisle.experiments.tracking_counts`.
        exposed: exposed units per arm (used when ``counts`` has no ``n_units``).
        control: the control arm.
        tolerance: the largest tolerated ratio of events per unit (either way).
        duplicate_tolerance: the largest tolerated difference in duplicate share.
        min_events: event types with fewer events over the two arms are not judged.

    Returns:
        The per-row figures, whether the check passed, and the problems found.
    """
    if "n_units" in counts.columns and len(counts):
        sampled = dict(
            zip(counts["variant"].astype(str), counts["n_units"].astype(int), strict=False)
        )
        exposed = {a: sampled.get(a, 0) for a in exposed}
    fraction = (
        float(counts["sample_fraction"].iloc[0])
        if "sample_fraction" in counts.columns and len(counts)
        else 1.0
    )
    arms = [a for a in exposed if exposed[a] > 0]
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    look = {
        (str(et), str(v)): (int(n), int(d))
        for et, v, n, d in zip(
            counts["event_type"].tolist(),
            counts["variant"].tolist(),
            counts["n_events"].tolist(),
            counts["n_duplicates"].tolist(),
            strict=True,
        )
    }
    types = sorted({et for et, _ in look})
    for et in types:
        n_c, d_c = look.get((et, control), (0, 0))
        rate_c = n_c / exposed[control] if exposed.get(control) else 0.0
        dup_c = d_c / n_c if n_c else 0.0
        for arm in arms:
            n_a, d_a = look.get((et, arm), (0, 0))
            rate_a = n_a / exposed[arm]
            dup_a = d_a / n_a if n_a else 0.0
            ratio = (
                rate_a / rate_c if rate_c > 0 else (float("inf") if rate_a > 0 else float("nan"))
            )
            status = "ok"
            if arm != control:
                if n_a + n_c < min_events:
                    status = "too_few"
                elif n_a == 0 or n_c == 0:
                    status = "missing"
                    gone = arm if n_a == 0 else control
                    problems.append(
                        f"event type {et!r} is missing in arm {gone!r} ({n_a + n_c:,} events in the "
                        "other arm): a tracking call that does not fire in one arm"
                    )
                elif ratio > tolerance or ratio < 1 / tolerance:
                    status = "volume"
                    problems.append(
                        f"event type {et!r}: {rate_a:.3g} events per unit in {arm!r} vs {rate_c:.3g} "
                        f"in {control!r} (ratio {ratio:.2f}, tolerance {tolerance:g}x)"
                    )
                elif abs(dup_a - dup_c) > duplicate_tolerance:
                    status = "duplicates"
                    problems.append(
                        f"event type {et!r}: {dup_a:.1%} duplicated events in {arm!r} vs {dup_c:.1%} "
                        f"in {control!r}: a double-fired tracking call?"
                    )
            rows.append(
                {
                    "event_type": et,
                    "variant": arm,
                    "n_events": n_a,
                    "per_unit": rate_a,
                    "ratio_to_control": ratio,
                    "duplicate_share": dup_a,
                    "status": status,
                }
            )
    return TrackingResult(
        rows=rows, passed=not problems, problems=problems, sample_fraction=fraction
    )

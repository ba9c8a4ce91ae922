"""Profile a dataset and recommend a strategy for it (the framing stage).

>>> from aisle.profile import profile
>>> p = profile(dataset)                      # doctest: +SKIP
>>> p.strategy.name, p.strategy.reasons[0]    # doctest: +SKIP
>>> rich.print(p.render())                    # doctest: +SKIP

:func:`profile` computes the figures (activity, time span, long tail, cold start, sessions,
repeat consumption, feedback, metadata richness, popularity drift) and asks :func:`advise` for a
strategy (``session-based``, ``collaborative``, ``content-based`` or ``hybrid``), a cold-start
plan, KPIs and a latency budget; :class:`AdvisorConfig` holds the thresholds of its rules.
"""

from aisle.profile._advisor import (
    Advice,
    AdvisorConfig,
    Alternative,
    ColdStartPlan,
    ColdStartSide,
    Kpi,
    LatencyBudget,
    Strategy,
    StrategyName,
    advise,
)
from aisle.profile._report import DataProfile, Provenance, profile
from aisle.profile._stats import (
    Activity,
    ColdStart,
    ColdStartPeriod,
    DataStats,
    Distribution,
    Drift,
    Feedback,
    LongTail,
    Metadata,
    PeriodOverlap,
    ProfileParameters,
    Repeats,
    Sessions,
    TimeSpan,
    compute_stats,
    gini,
)

__all__ = [
    "Activity",
    "Advice",
    "AdvisorConfig",
    "Alternative",
    "ColdStart",
    "ColdStartPeriod",
    "ColdStartPlan",
    "ColdStartSide",
    "DataProfile",
    "DataStats",
    "Distribution",
    "Drift",
    "Feedback",
    "Kpi",
    "LatencyBudget",
    "LongTail",
    "Metadata",
    "PeriodOverlap",
    "ProfileParameters",
    "Provenance",
    "Repeats",
    "Sessions",
    "Strategy",
    "StrategyName",
    "TimeSpan",
    "advise",
    "compute_stats",
    "gini",
    "profile",
]

"""The strategy advisor: from the figures of a profile to a recommended modelling strategy.

:func:`advise` reads a :class:`~aisle.profile._stats.DataStats` and returns an :class:`Advice`:
the strategy, a cold-start plan, the KPIs to track and a latency budget. Every sentence it
writes quotes the figures that led to it. The thresholds live in :class:`AdvisorConfig` (frozen,
every field has a default) so a shop can tune them.

Decision rules, in order (``cfg`` is the :class:`AdvisorConfig`):

1. **session-based** when the users are anonymous (``user_id = session_id``), or when at least
   ``cfg.session_single_user_share`` of users have a single session *and* the median user has at
   most ``cfg.session_max_median_user_events`` events: there is no long-term history to learn from,
   only the current session.
2. Otherwise the item side is *hard* when, with timestamps, the mean share of new items per
   period is at least ``cfg.high_new_item_share`` or their mean event share at least
   ``cfg.high_new_item_event_share``, or when at least ``cfg.sparse_tail_item_share`` of items have
   fewer than ``tail_threshold`` events. User histories are *thin* when the median user has fewer
   than ``cfg.min_median_user_events`` events. Metadata is *rich* when at least
   ``cfg.min_catalog_coverage`` of the event items are in the catalog and either ``text`` is filled
   for at least ``cfg.min_text_coverage`` of them or at least ``cfg.min_rich_attributes`` of
   the descriptive attributes (``category``, ``brand``, ``text`` and text-like extra columns,
   less ids, links and copies of another column) are filled for at least
   ``cfg.min_attribute_coverage`` of the items (titles alone are too thin to count).
3. **content-based** when metadata is rich and user histories are thin (whether or not the item
   side is hard): the attributes carry more signal than the interactions.
4. **hybrid** when metadata is rich and the item side is hard but user histories are long enough:
   collaborative filtering for the head, content for new and tail items.
5. **collaborative** otherwise (enough interactions per user, or no metadata to do better).

The cold-start plan grades each side by the mean new share per period (``high`` at
``cfg.high_new_item_share`` / ``cfg.high_new_user_share``, ``moderate`` at
``cfg.moderate_new_share``). The latency budget suggests ``cfg.session_p99_ms`` for session-based
serving (recommendations update between clicks), ``cfg.realtime_p99_ms`` for real-time scoring,
``cfg.batch_lookup_p99_ms`` for precomputed top-N lookups; precomputation fits when the strategy
is not session-based and ``n_users x cfg.batch_top_k <= cfg.max_batch_rows``, and needs a real-time
path beside it when new users are frequent. An ANN index is suggested from ``cfg.ann_min_items``
items.

Notes that do not change the choice: popularity drifts *fast* below a mean top-k Jaccard overlap
of ``cfg.fast_drift_jaccard`` and is *stable* from ``cfg.stable_drift_jaccard``; a repeat-purchase
rate from ``cfg.high_repeat_purchase_rate`` keeps bought items eligible; explicit feedback is
ranked, not predicted. KPIs follow the feedback: conversion and revenue (or purchases) per session
where purchases are logged, click-through where only clicks/views are, NDCG/Recall on ratings,
next-event HitRate/MRR for session-based; catalog coverage and popularity bias always.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aisle.profile._stats import DataStats

__all__ = [
    "Advice",
    "AdvisorConfig",
    "Alternative",
    "ColdStartPlan",
    "ColdStartSide",
    "Kpi",
    "LatencyBudget",
    "Strategy",
    "StrategyName",
    "advise",
]

StrategyName = Literal["session-based", "collaborative", "content-based", "hybrid"]
Figure = float | int | bool | str | None

_STRATEGIES: tuple[StrategyName, ...] = (
    "session-based",
    "collaborative",
    "content-based",
    "hybrid",
)


class AdvisorConfig(BaseModel):
    """The thresholds of the advisor's decision rules (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_single_user_share: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="share of single-session users that points to session-based",
    )
    session_max_median_user_events: float = Field(
        default=10,
        ge=0,
        description="... together with at most this many events for the median user",
    )
    min_median_user_events: float = Field(
        default=5, ge=0, description="median events per user below which user histories are thin"
    )
    high_new_item_share: float = Field(
        default=0.2, ge=0, le=1, description="mean new-item share per period that is high"
    )
    high_new_item_event_share: float = Field(
        default=0.1, ge=0, le=1, description="mean event share of new items per period that is high"
    )
    high_new_user_share: float = Field(
        default=0.5, ge=0, le=1, description="mean new-user share per period that is high"
    )
    moderate_new_share: float = Field(
        default=0.05, ge=0, le=1, description="new share from which cold start is moderate"
    )
    sparse_tail_item_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="share of items in the long tail that makes the item side sparse",
    )
    min_catalog_coverage: float = Field(
        default=0.8, ge=0, le=1, description="share of event items in the catalog"
    )
    min_attribute_coverage: float = Field(
        default=0.8, ge=0, le=1, description="fill rate for an attribute to count"
    )
    min_text_coverage: float = Field(
        default=0.5, ge=0, le=1, description="fill rate of text that alone makes metadata rich"
    )
    min_rich_attributes: int = Field(
        default=3, ge=1, description="descriptive attributes that make metadata rich"
    )
    fast_drift_jaccard: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="mean top-k Jaccard overlap below which popularity drifts fast",
    )
    stable_drift_jaccard: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="mean top-k Jaccard overlap from which popularity is stable",
    )
    high_repeat_purchase_rate: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="repeat-purchase rate from which already-bought items stay eligible",
    )
    high_popularity_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="event share of the top 20 % items that calls for a popularity-bias KPI",
    )
    batch_top_k: int = Field(default=100, ge=1, description="length of a precomputed top-N list")
    max_batch_rows: int = Field(
        default=500_000_000, ge=1, description="most precomputed (user, item) rows that fit"
    )
    ann_min_items: int = Field(
        default=100_000, ge=1, description="items from which an ANN index is suggested"
    )
    session_p99_ms: int = Field(
        default=50, ge=1, description="p99 budget when recommendations follow each click"
    )
    realtime_p99_ms: int = Field(
        default=100, ge=1, description="p99 budget for real-time scoring on a page"
    )
    batch_lookup_p99_ms: int = Field(
        default=20, ge=1, description="p99 budget for a precomputed top-N lookup"
    )


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Alternative(_Out):
    """A strategy considered and not chosen."""

    name: StrategyName
    why_not: str


class Strategy(_Out):
    """The recommended strategy, why, and what else was considered."""

    name: StrategyName
    models: list[str] = Field(description="model families of aisle that fit the strategy")
    reasons: list[str]
    alternatives: list[Alternative]
    notes: list[str] = Field(
        default_factory=list, description="advice that does not change the choice"
    )
    figures: dict[str, Figure] = Field(description="the figures the rules read")


class ColdStartSide(_Out):
    """The cold-start plan for users or for items."""

    severity: Literal["low", "moderate", "high", "unknown"]
    actions: list[str]
    figures: dict[str, Figure]


class ColdStartPlan(_Out):
    """How to serve new items and new users."""

    items: ColdStartSide
    users: ColdStartSide


class Kpi(_Out):
    """A metric to track, and why it matters for this data."""

    name: str
    kind: Literal["business", "offline", "guardrail"]
    why: str


class LatencyBudget(_Out):
    """A serving-latency suggestion and whether batch precomputation fits."""

    mode: Literal["real-time", "batch", "batch + real-time"]
    p99_ms: int
    batch_precompute_fits: bool
    needs_ann: bool
    reasons: list[str]
    figures: dict[str, Figure]


class Advice(_Out):
    """Everything the advisor recommends for one dataset."""

    strategy: Strategy
    cold_start_plan: ColdStartPlan
    kpis: list[Kpi]
    latency_budget: LatencyBudget


# --------------------------------------------------------------------------------------------
# formatting


def pct(x: float | None) -> str:
    """A share as a percentage for sentences: ``0.923 -> "92 %"``, ``0.063 -> "6.3 %"``."""
    if x is None:
        return "n/a"
    v = 100.0 * x
    if v == 0 or v >= 10:
        return f"{v:.0f} %"
    if v >= 0.1:
        return f"{v:.1f} %"
    return f"{v:.2f} %"


def num(x: float | None) -> str:
    """A count or figure for sentences, with thousands separators."""
    if x is None:
        return "n/a"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.1f}"


# --------------------------------------------------------------------------------------------
# the facts the rules read


class _Facts:
    """Derived flags and the figures behind them (kept in one place for the sentences)."""

    def __init__(self, s: DataStats, cfg: AdvisorConfig) -> None:
        self.s, self.cfg = s, cfg
        ses, cs, md = s.sessions, s.cold_start, s.metadata
        self.median_user_events = s.activity.events_per_user.median
        self.anonymous = ses.anonymous_sessions
        self.single_session = ses.single_session_user_share
        self.short_sessions = (
            self.single_session is not None
            and self.single_session >= cfg.session_single_user_share
            and self.median_user_events <= cfg.session_max_median_user_events
        )
        self.session_based = self.anonymous or self.short_sessions
        self.thin_users = self.median_user_events < cfg.min_median_user_events
        self.new_item_share = cs.mean_new_item_share if cs.applicable else None
        self.new_item_event_share = cs.mean_new_item_event_share if cs.applicable else None
        self.new_user_share = cs.mean_new_user_share if cs.applicable else None
        self.new_user_event_share = cs.mean_new_user_event_share if cs.applicable else None
        self.item_cold = (self.new_item_share or 0.0) >= cfg.high_new_item_share or (
            self.new_item_event_share or 0.0
        ) >= cfg.high_new_item_event_share
        self.tail_share = s.long_tail.tail_item_share
        self.sparse_items = self.tail_share >= cfg.sparse_tail_item_share
        self.item_hard = self.item_cold or self.sparse_items
        cov = md.attribute_coverage
        self.text_coverage = cov.get("text", 0.0)
        self.descriptive = [
            a for a in md.descriptive_attributes if cov.get(a, 0.0) >= cfg.min_attribute_coverage
        ]
        self.catalog_ok = (
            md.has_catalog and (md.catalog_coverage or 0.0) >= cfg.min_catalog_coverage
        )
        self.rich = self.catalog_ok and (
            self.text_coverage >= cfg.min_text_coverage
            or len(self.descriptive) >= cfg.min_rich_attributes
        )

    def figures(self) -> dict[str, Figure]:
        s = self.s
        return {
            "n_users": s.n_users,
            "n_items": s.n_items,
            "n_events": s.n_events,
            "density": s.activity.density,
            "median_events_per_user": self.median_user_events,
            "anonymous_sessions": self.anonymous,
            "single_session_user_share": self.single_session,
            "median_session_length": s.sessions.length.median if s.sessions.length else None,
            "mean_new_item_share": self.new_item_share,
            "mean_new_item_event_share": self.new_item_event_share,
            "mean_new_user_share": self.new_user_share,
            "tail_item_share": self.tail_share,
            "catalog_coverage": s.metadata.catalog_coverage,
            "text_coverage": self.text_coverage if s.metadata.has_catalog else None,
            "descriptive_attributes": ", ".join(self.descriptive) or None,
            "rich_metadata": self.rich,
            "item_side_hard": self.item_hard,
            "thin_user_histories": self.thin_users,
        }

    # sentences -------------------------------------------------------------------------------

    def session_sentence(self) -> str:
        ses = self.s.sessions
        length = ses.length.median if ses.length else None
        if self.anonymous:
            return (
                f"users are anonymous (user_id = session_id): each of the {num(ses.n_sessions)} "
                f"sessions (median {num(length)} events) is its own user, so there is no history "
                "beyond the current session; session-based models (session-kNN, GRU4Rec/SASRec) fit"
            )
        return (
            f"{pct(self.single_session)} of users have a single session and the median user has "
            f"{num(self.median_user_events)} events (thresholds: {pct(self.cfg.session_single_user_share)}, "
            f"{num(self.cfg.session_max_median_user_events)}): histories end with the session, so "
            "session-based models (session-kNN, GRU4Rec/SASRec) fit"
        )

    def history_sentence(self) -> str:
        a = self.s.activity
        return (
            f"the median user has {num(self.median_user_events)} events "
            f"(mean {num(a.events_per_user.mean)}, minimum {num(a.events_per_user.min)}) and "
            f"{pct(a.density)} of all user-item pairs are observed ({num(a.n_user_item_pairs)} pairs "
            f"over {num(self.s.n_users)} users x {num(self.s.n_items)} items)"
        )

    def item_sentence(self) -> str:
        parts = []
        if self.new_item_share is not None:
            parts.append(
                f"{pct(self.new_item_share)} of each period's items are new "
                f"({pct(self.new_item_event_share)} of its events)"
            )
        parts.append(
            f"{pct(self.tail_share)} of items have fewer than {self.s.long_tail.tail_threshold} events"
        )
        return " and ".join(parts)

    def metadata_sentence(self) -> str:
        md = self.s.metadata
        if not md.has_catalog:
            return "there is no catalog"
        attrs = ", ".join(self.descriptive) or "none"
        return (
            f"the catalog covers {pct(md.catalog_coverage)} of event items; descriptive attributes "
            f"filled for >= {pct(self.cfg.min_attribute_coverage)} of items: {attrs}; "
            f"text is filled for {pct(self.text_coverage)}"
        )


# --------------------------------------------------------------------------------------------
# the rules


_MODELS: dict[StrategyName, list[str]] = {
    "session-based": ["session-kNN", "GRU4Rec", "SASRec", "popularity (first page view)"],
    "collaborative": ["item-kNN", "EASE", "iALS", "BPR", "popularity (fallback)"],
    "content-based": ["content (text/category embeddings)", "popularity within category"],
    "hybrid": ["content/hybrid (CF + item attributes)", "iALS or EASE for the head", "two-tower"],
}


def _choose(f: _Facts) -> tuple[StrategyName, list[str]]:
    cfg = f.cfg
    if f.session_based:
        reasons = [f.session_sentence()]
        if f.anonymous and f.single_session is not None:
            reasons.append(
                f"{pct(f.single_session)} of users have a single session and the median session "
                f"has {num(f.s.sessions.length.median if f.s.sessions.length else None)} events"
            )
        return "session-based", reasons
    if f.rich and f.thin_users:
        return "content-based", [
            f"user histories are thin (collaborative filtering wants at least "
            f"{num(cfg.min_median_user_events)} events for the median user): {f.history_sentence()}",
            f"metadata is rich: {f.metadata_sentence()}; content-based models score any item "
            "from its attributes",
        ]
    if f.rich and f.item_hard:
        return "hybrid", [
            f"user histories support collaborative filtering: {f.history_sentence()}",
            f"but the item side is hard: {f.item_sentence()} (thresholds: "
            f"{pct(cfg.high_new_item_share)} new items, {pct(cfg.sparse_tail_item_share)} tail items)",
            f"and metadata is rich: {f.metadata_sentence()}; a hybrid keeps CF for the head and "
            "scores new and tail items from their attributes",
        ]
    reasons = [
        f"{f.history_sentence()}: enough interactions per user for collaborative filtering "
        "(item-kNN, EASE, iALS/BPR)"
    ]
    if not f.thin_users and not f.item_hard:
        reasons.append(f"the item side is stable: {f.item_sentence()}")
    elif not f.rich:
        hard = f"{f.item_sentence()}, but " if f.item_hard else ""
        reasons.append(
            f"{hard}metadata cannot do better: {f.metadata_sentence()}; collaborative filtering "
            "with a popularity fallback is the best available"
        )
    if f.single_session is not None:
        reasons.append(
            f"users return: {pct(1 - f.single_session)} of them have more than one session, so "
            "their history outlives a session"
        )
    return "collaborative", reasons


def _why_not(name: StrategyName, chosen: StrategyName, f: _Facts) -> str:
    cfg = f.cfg
    if name == "session-based":
        if f.s.sessions.source == "unavailable":
            return "no session ids are given and none can be derived without real timestamps"
        return (
            f"users are identified and come back: {pct(f.single_session)} have a single session "
            f"(session-based from {pct(cfg.session_single_user_share)}) and the median user has "
            f"{num(f.median_user_events)} events; long-term histories carry signal that "
            "session-only models ignore (sequential models remain an option)"
        )
    if name == "collaborative":
        if chosen == "session-based":
            return (
                f"per-user histories are too short to factorize: the median user has "
                f"{num(f.median_user_events)} events"
                + (" and users never come back (anonymous sessions)" if f.anonymous else "")
            )
        if chosen == "content-based":
            return (
                f"the median user has only {num(f.median_user_events)} events "
                f"(collaborative from {num(cfg.min_median_user_events)})"
            )
        return (
            f"{f.item_sentence()}: collaborative filtering cannot score items without interactions"
        )
    if name == "content-based":
        if not f.rich:
            return f"metadata is too thin for content models: {f.metadata_sentence()}"
        if chosen == "session-based":
            return (
                "the metadata could describe items, but in-session behaviour predicts the next "
                "click better; use it for new items (cold-start plan)"
            )
        return (
            f"interactions are plentiful (median {num(f.median_user_events)} events per user); "
            "content alone ignores them and usually ranks worse than collaborative filtering"
        )
    # hybrid
    if not f.rich:
        return f"metadata is too thin to add an attribute side: {f.metadata_sentence()}"
    if chosen == "session-based":
        return "users are not known across sessions, so the collaborative half has no history"
    if chosen == "content-based":
        return (
            f"the collaborative half would learn from a median of {num(f.median_user_events)} "
            "events per user, too few to help"
        )
    return (
        f"the item side is stable ({f.item_sentence()}), so the attribute side would rarely "
        "change a ranking; not worth its complexity"
    )


def _notes(f: _Facts, chosen: StrategyName) -> list[str]:
    s, cfg = f.s, f.cfg
    notes: list[str] = []
    if s.drift.applicable and s.drift.mean_jaccard is not None:
        if s.drift.mean_jaccard < cfg.fast_drift_jaccard:
            notes.append(
                f"the top-{s.drift.top_k} items overlap by only {pct(s.drift.mean_jaccard)} (Jaccard) "
                "between consecutive periods: popularity changes fast; weight recent events and "
                "retrain often"
            )
        else:
            rho = s.drift.mean_spearman
            pace = (
                "popularity shifts moderately; retrain regularly"
                if s.drift.mean_jaccard < cfg.stable_drift_jaccard
                else "popularity is stable"
            )
            notes.append(
                f"the top-{s.drift.top_k} items overlap by {pct(s.drift.mean_jaccard)} (Jaccard; "
                f"Spearman {'n/a' if rho is None else f'{rho:.2f}'}) between consecutive periods: "
                + pace
            )
    rate = s.repeats.repeat_purchase_rate
    if rate is not None and rate >= cfg.high_repeat_purchase_rate:
        notes.append(
            f"{pct(rate)} of bought user-item pairs are bought again: keep already-bought items "
            "eligible (exclude_seen=False for purchases) or add a repeat-aware model"
        )
    if s.feedback.kind == "explicit":
        notes.append(
            f"the feedback is explicit ({num(s.feedback.n_ratings)} ratings, mean "
            f"{num(s.feedback.rating_mean)}): rank top-N from the interactions (ratings as weights "
            "or a relevance threshold) rather than predicting the rating"
        )
    if not s.time_span.has_timestamps:
        notes.append(
            "the timestamps only encode order: cold start and drift are not measured; evaluate "
            "with leave-last-out per user rather than a global time split"
        )
    if chosen != "session-based" and f.anonymous is False and s.sessions.note:
        notes.append(s.sessions.note)
    return notes


def _strategy(f: _Facts) -> Strategy:
    chosen, reasons = _choose(f)
    return Strategy(
        name=chosen,
        models=_MODELS[chosen],
        reasons=reasons,
        alternatives=[
            Alternative(name=n, why_not=_why_not(n, chosen, f)) for n in _STRATEGIES if n != chosen
        ],
        notes=_notes(f, chosen),
        figures=f.figures(),
    )


def _severity(
    share: float | None, high: float, cfg: AdvisorConfig
) -> Literal["low", "moderate", "high", "unknown"]:
    if share is None:
        return "unknown"
    if share >= high:
        return "high"
    return "moderate" if share >= cfg.moderate_new_share else "low"


def _cold_start_plan(f: _Facts, chosen: StrategyName) -> ColdStartPlan:
    cfg, s = f.cfg, f.s
    unknown = (
        f"cold start over time is not measured ({s.cold_start.note or 'no periods'})"
        if not s.cold_start.applicable
        else None
    )
    item_sev = _severity(f.new_item_share, cfg.high_new_item_share, cfg)
    if item_sev == "moderate" and (f.new_item_event_share or 0.0) >= cfg.high_new_item_event_share:
        item_sev = "high"
    items: list[str] = [unknown] if unknown else []
    if f.new_item_share is not None:
        items.append(f"{f.item_sentence()}")
    if item_sev in ("high", "moderate", "unknown") and f.rich:
        items.append(
            f"score new items from their attributes ({', '.join(f.descriptive) or 'text'}) with a "
            "content model and blend them into the candidates until they have interactions"
        )
    elif item_sev in ("high", "moderate", "unknown"):
        cov = s.metadata.attribute_coverage
        missing = [
            a for a in ("category", "brand", "text") if cov.get(a, 0.0) < cfg.min_attribute_coverage
        ]
        collect = f"; collect {' and '.join(missing)} to enable a content model" if missing else ""
        items.append(
            f"metadata is thin ({f.metadata_sentence()}): give new items exploration slots "
            f"(recency/popularity within category, a bandit){collect}"
        )
    else:
        items.append(
            "few new items: a popularity fallback is enough until they gather interactions; "
            "fold them in at the next retrain"
        )
    user_sev = _severity(f.new_user_share, cfg.high_new_user_share, cfg)
    users: list[str] = [unknown] if unknown else []
    if f.new_user_share is not None:
        users.append(
            f"{pct(f.new_user_share)} of each period's users are new; they make "
            f"{pct(f.new_user_event_share)} of its events"
        )
    if chosen == "session-based" or f.anonymous:
        users.append(
            "session-based models recommend from the first click of a session; show popular or "
            "trending items (per category or entry page) before it"
        )
    elif user_sev in ("high", "moderate", "unknown"):
        users.append(
            f"fold new users in from their first events without retraining (item-kNN/EASE score "
            f"any history; the median user brings {num(f.median_user_events)} events); serve "
            "popular/trending items before the first event and consider an onboarding step"
        )
    else:
        users.append("few new users: a popularity fallback covers them until the next retrain")
    return ColdStartPlan(
        items=ColdStartSide(
            severity=item_sev,
            actions=items,
            figures={
                "mean_new_item_share": f.new_item_share,
                "mean_new_item_event_share": f.new_item_event_share,
                "tail_item_share": f.tail_share,
                "rich_metadata": f.rich,
            },
        ),
        users=ColdStartSide(
            severity=user_sev,
            actions=users,
            figures={
                "mean_new_user_share": f.new_user_share,
                "mean_new_user_event_share": f.new_user_event_share,
                "median_events_per_user": f.median_user_events,
                "anonymous_sessions": f.anonymous,
            },
        ),
    )


def _kpis(f: _Facts, chosen: StrategyName) -> list[Kpi]:
    s, cfg = f.s, f.cfg
    fb = s.feedback
    funnel = fb.funnel
    n = s.n_events
    kpis: list[Kpi] = []
    if funnel["purchase"]:
        conv = (
            f"; {pct(fb.session_conversion_rate)} of sessions convert"
            if fb.session_conversion_rate is not None
            else ""
        )
        kpis.append(
            Kpi(
                name="conversion rate (sessions with a purchase)",
                kind="business",
                why=f"{num(funnel['purchase'])} purchases ({pct(funnel['purchase'] / n)} of events){conv}",
            )
        )
        if (fb.purchase_price_share or 0.0) >= 0.5:
            kpis.append(
                Kpi(
                    name="revenue per session",
                    kind="business",
                    why=f"prices are known for {pct(fb.purchase_price_share)} of purchases",
                )
            )
        else:
            kpis.append(
                Kpi(
                    name="purchases per session",
                    kind="business",
                    why=f"prices are known for only {pct(fb.purchase_price_share)} of purchases, so revenue cannot be measured",
                )
            )
        margin = s.metadata.attribute_coverage.get("margin", 0.0)
        if margin >= 0.5:
            kpis.append(
                Kpi(
                    name="margin per session",
                    kind="business",
                    why=f"margins are known for {pct(margin)} of items",
                )
            )
    if funnel["add_to_cart"]:
        kpis.append(
            Kpi(
                name="add-to-cart rate",
                kind="business",
                why=f"{num(funnel['add_to_cart'])} add-to-cart events; cart-to-purchase ratio "
                f"{pct(fb.conversion.get('add_to_cart_to_purchase'))}",
            )
        )
    if (funnel["click"] or funnel["view"]) and not funnel["purchase"]:
        kpis.append(
            Kpi(
                name="click-through rate on recommendations",
                kind="business",
                why="the log tracks "
                + " and ".join(f"{num(funnel[t])} {t}s" for t in ("view", "click") if funnel[t])
                + " but no purchases",
            )
        )
    if chosen == "session-based":
        kpis.append(
            Kpi(
                name="HitRate@20 and MRR@20 on the next event of a session",
                kind="offline",
                why=f"sessions have a median of {num(s.sessions.length.median if s.sessions.length else None)} "
                "events: the task is predicting the next one",
            )
        )
    elif fb.kind in ("explicit", "mixed") and fb.n_ratings:
        threshold = (fb.rating_max or 5.0) - 1.0
        kpis.append(
            Kpi(
                name=f"NDCG@10 and Recall@10 with ratings >= {num(threshold)} as relevant",
                kind="offline",
                why=f"{num(fb.n_ratings)} ratings ({pct(fb.rating_share)} of events) on a "
                f"{num(fb.rating_min)}-{num(fb.rating_max)} scale, mean {num(fb.rating_mean)}",
            )
        )
    else:
        target = "purchases" if funnel["purchase"] else "the held-out interactions"
        kpis.append(
            Kpi(
                name=f"NDCG@10 and Recall@20 on {target}",
                kind="offline",
                why=f"implicit feedback ({num(n)} events): ranking quality of the top of the list",
            )
        )
    if funnel["return"]:
        kpis.append(
            Kpi(
                name="return rate of recommended purchases",
                kind="guardrail",
                why=f"{pct(fb.return_rate)} of purchases are returned",
            )
        )
    lt = s.long_tail
    kpis.append(
        Kpi(
            name="catalog coverage@10",
            kind="guardrail",
            why=f"{pct(lt.tail_item_share)} of the {num(s.n_items)} items have fewer than "
            f"{lt.tail_threshold} events: track how much of the catalog recommendations reach",
        )
    )
    concentrated = lt.top_20pct_event_share >= cfg.high_popularity_share
    kpis.append(
        Kpi(
            name="popularity bias (mean popularity of recommended items, Gini of exposure)",
            kind="guardrail",
            why=f"popularity Gini {lt.gini:.2f}; the top 20 % of items get {pct(lt.top_20pct_event_share)} "
            "of events" + (": models drift towards the head" if concentrated else ""),
        )
    )
    return kpis


def _latency(f: _Facts, chosen: StrategyName) -> LatencyBudget:
    s, cfg = f.s, f.cfg
    rows = s.n_users * cfg.batch_top_k
    needs_ann = s.n_items >= cfg.ann_min_items
    fits = chosen != "session-based" and rows <= cfg.max_batch_rows
    reasons: list[str] = []
    gap = s.sessions.median_gap_seconds
    if chosen == "session-based":
        mode: Literal["real-time", "batch", "batch + real-time"] = "real-time"
        p99 = cfg.session_p99_ms
        length = s.sessions.length.median if s.sessions.length else None
        reasons.append(
            f"recommendations must follow each click: sessions have a median of {num(length)} events"
            + (f" {num(gap)} s apart" if gap is not None else "")
            + f", and {'users are anonymous' if f.anonymous else 'most users have one session'}, "
            f"so nothing can be precomputed per user; p99 <= {cfg.session_p99_ms} ms keeps the "
            "update within the page render"
        )
    elif fits and (f.new_user_share or 0.0) < cfg.high_new_user_share:
        mode, p99 = "batch", cfg.batch_lookup_p99_ms
        reasons.append(
            f"{num(s.n_users)} users x top-{cfg.batch_top_k} = {num(rows)} precomputed rows "
            f"(limit {num(cfg.max_batch_rows)}): a periodic batch fits, served as a cached lookup "
            f"(p99 <= {cfg.batch_lookup_p99_ms} ms); unknown users get the popularity list"
        )
    elif fits:
        mode, p99 = "batch + real-time", cfg.realtime_p99_ms
        reasons.append(
            f"{num(s.n_users)} users x top-{cfg.batch_top_k} = {num(rows)} precomputed rows "
            f"(limit {num(cfg.max_batch_rows)}): batch precomputation fits for known users"
        )
        reasons.append(
            f"but {pct(f.new_user_share)} of each period's users are new: they need a real-time "
            f"fold-in path within p99 {cfg.realtime_p99_ms} ms"
        )
    else:
        mode, p99 = "real-time", cfg.realtime_p99_ms
        reasons.append(
            f"{num(s.n_users)} users x top-{cfg.batch_top_k} = {num(rows)} rows exceed the batch "
            f"limit of {num(cfg.max_batch_rows)}: score on request within p99 {cfg.realtime_p99_ms} ms "
            "and cache the top-N of active users"
        )
    reasons.append(
        f"{num(s.n_items)} items: "
        + (
            f"from {num(cfg.ann_min_items)} items an ANN index (faiss) should retrieve candidates"
            if needs_ann
            else "exact scoring of every item per request is cheap; no ANN index needed"
        )
    )
    return LatencyBudget(
        mode=mode,
        p99_ms=p99,
        batch_precompute_fits=fits,
        needs_ann=needs_ann,
        reasons=reasons,
        figures={
            "n_users": s.n_users,
            "n_items": s.n_items,
            "precomputed_rows": rows,
            "mean_new_user_share": f.new_user_share,
            "median_session_gap_seconds": gap,
            "median_session_length": s.sessions.length.median if s.sessions.length else None,
        },
    )


def advise(stats: DataStats, config: AdvisorConfig | None = None) -> Advice:
    """Recommend a strategy, a cold-start plan, KPIs and a latency budget from a profile's figures.

    Args:
        stats: the figures of a profile (see :func:`aisle.profile.profile`).
        config: the thresholds of the decision rules; the defaults when ``None``.

    Returns:
        The advice; every sentence in it quotes the figures behind it.
    """
    cfg = config or AdvisorConfig()
    facts = _Facts(stats, cfg)
    strategy = _strategy(facts)
    return Advice(
        strategy=strategy,
        cold_start_plan=_cold_start_plan(facts, strategy.name),
        kpis=_kpis(facts, strategy.name),
        latency_budget=_latency(facts, strategy.name),
    )

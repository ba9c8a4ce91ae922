"""The data profile: the figures of a dataset and the advice drawn from them, as JSON or tables.

:func:`profile` is the entry point of the framing stage. It returns a :class:`DataProfile`, a
frozen pydantic model whose :meth:`~DataProfile.to_dict` is JSON-safe and whose
:meth:`~DataProfile.render` builds rich tables for a terminal (rich is imported only there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from aisle.data._dataset import Dataset
from aisle.profile._advisor import (
    AdvisorConfig,
    ColdStartPlan,
    ColdStartSide,
    Kpi,
    LatencyBudget,
    Strategy,
    advise,
    num,
    pct,
)
from aisle.profile._stats import DataStats, Distribution, compute_stats

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

__all__ = ["DataProfile", "Provenance", "profile"]


class Provenance(BaseModel):
    """Where the figures come from: the code version and the files read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aisle_version: str
    sources: list[dict[str, str | int]] = Field(
        default_factory=list, description="path, bytes and sha256 of each file read"
    )


class DataProfile(DataStats):
    """The profile of a dataset: descriptive sections plus the advisor's recommendations.

    The JSON from :meth:`to_dict` has ``n_users``, ``n_items``, ``n_events`` and ``strategy`` at
    the top level, beside ``activity``, ``time_span``, ``long_tail``, ``cold_start``,
    ``sessions``, ``repeats``, ``feedback``, ``metadata``, ``drift``, ``cold_start_plan``,
    ``kpis``, ``latency_budget``, ``parameters``, ``advisor_config`` and ``provenance``.
    """

    strategy: Strategy
    cold_start_plan: ColdStartPlan
    kpis: list[Kpi]
    latency_budget: LatencyBudget
    advisor_config: AdvisorConfig
    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-safe values (timestamps as ISO 8601 strings, no NaN)."""
        return self.model_dump(mode="json")

    def render(self) -> RenderableType:
        """The profile as rich tables, for a terminal (``rich.print(p.render())``)."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        parts: list[RenderableType] = [
            self._overview_table(),
            self._distribution_table(),
            self._figures_table(),
        ]
        if self.cold_start.applicable:
            parts.append(self._cold_start_table())
        if self.drift.applicable:
            parts.append(self._drift_table())
        if self.metadata.has_catalog:
            parts.append(self._metadata_table())
        parts.append(
            Panel(
                self._strategy_text(),
                title=f"recommended strategy: [bold]{self.strategy.name}[/bold]",
                border_style="green",
            )
        )
        parts.append(self._advice_table())
        parts.append(Text(f"aisle {self.provenance.aisle_version}", style="dim"))
        return Group(*parts)

    # tables ----------------------------------------------------------------------------------

    def _overview_table(self) -> Table:
        from rich.markup import escape
        from rich.table import Table

        t = Table(
            title=f"profile of {escape(self.dataset)}", show_header=False, title_justify="left"
        )
        t.add_column("figure", style="bold")
        t.add_column("value")
        ts = self.time_span
        t.add_row(
            "users / items / events",
            f"{num(self.n_users)} / {num(self.n_items)} / {num(self.n_events)}",
        )
        t.add_row(
            "events by type",
            escape(", ".join(f"{k} {num(v)}" for k, v in self.activity.events_by_type.items())),
        )
        t.add_row(
            "density",
            f"{pct(self.activity.density)} ({num(self.activity.n_user_item_pairs)} user-item pairs)",
        )
        if ts.has_timestamps and ts.first and ts.last:
            t.add_row(
                "time span",
                f"{ts.first:%Y-%m-%d %H:%M} .. {ts.last:%Y-%m-%d %H:%M} UTC ({num(ts.days)} days)",
            )
        else:
            t.add_row("time span", escape(ts.note or "n/a"))
        ses = self.sessions
        t.add_row(
            "sessions",
            f"{ses.source}"
            + (f" ({num(ses.gap_minutes)}-minute gap)" if ses.gap_minutes else "")
            + (f", {num(ses.n_sessions)} sessions" if ses.n_sessions is not None else "")
            + (", anonymous users" if ses.anonymous_sessions else ""),
        )
        return t

    def _distribution_table(self) -> Table:
        from rich.table import Table

        t = Table(title="distributions", title_justify="left")
        for c in ("", "mean", "median", "p90", "min", "max"):
            t.add_column(c, justify="right" if c else "left")
        rows: list[tuple[str, Distribution | None]] = [
            ("events per user", self.activity.events_per_user),
            ("events per item", self.activity.events_per_item),
            ("events per session", self.sessions.length),
            ("sessions per user", self.sessions.sessions_per_user),
            ("session minutes", self.sessions.duration_minutes),
        ]
        for label, d in rows:
            if d is not None:
                t.add_row(
                    label, *(num(round(v, 1)) for v in (d.mean, d.median, d.p90, d.min, d.max))
                )
        return t

    def _figures_table(self) -> Table:
        from rich.table import Table

        t = Table(
            title="long tail, sessions, repeats, feedback", show_header=False, title_justify="left"
        )
        t.add_column("figure", style="bold")
        t.add_column("value")
        lt, ses, rep, fb = self.long_tail, self.sessions, self.repeats, self.feedback
        t.add_row("popularity Gini", f"{lt.gini:.3f}")
        t.add_row(
            "events on top 1 % / 20 % items",
            f"{pct(lt.top_1pct_event_share)} ({num(lt.top_1pct_items)} items) / "
            f"{pct(lt.top_20pct_event_share)} ({num(lt.top_20pct_items)} items)",
        )
        t.add_row(f"items with < {lt.tail_threshold} events", pct(lt.tail_item_share))
        if ses.n_sessions is not None:
            t.add_row("single-event sessions", pct(ses.single_event_session_share))
            t.add_row("users with a single session", pct(ses.single_session_user_share))
        t.add_row("repeated (user, item, type)", pct(rep.repeat_pair_share))
        if rep.repeat_purchase_rate is not None:
            t.add_row("repeat-purchase rate", pct(rep.repeat_purchase_rate))
        if rep.cross_session_repeat_share is not None:
            t.add_row("pairs seen in > 1 session", pct(rep.cross_session_repeat_share))
        t.add_row("feedback", fb.kind)
        if fb.n_ratings:
            dist = ", ".join(f"{k}: {num(v)}" for k, v in (fb.rating_values or {}).items())
            t.add_row(
                "ratings",
                f"{num(fb.n_ratings)}, mean {num(fb.rating_mean)}" + (f" ({dist})" if dist else ""),
            )
        funnel = {k: v for k, v in fb.funnel.items() if v}
        if funnel:
            t.add_row("funnel", " -> ".join(f"{k} {num(v)}" for k, v in funnel.items()))
            ratios = {k: v for k, v in fb.conversion.items() if v is not None}
            if ratios:
                t.add_row("conversion", ", ".join(f"{k} {pct(v)}" for k, v in ratios.items()))
            if fb.return_rate is not None:
                t.add_row("return rate", pct(fb.return_rate))
            if fb.session_conversion_rate is not None:
                t.add_row("sessions with a purchase", pct(fb.session_conversion_rate))
        return t

    def _cold_start_table(self) -> Table:
        from rich.table import Table

        t = Table(
            title=f"cold start ({self.cold_start.n_periods} equal periods)", title_justify="left"
        )
        for c in (
            "period",
            "from",
            "events",
            "new users",
            "their events",
            "new items",
            "their events",
        ):
            t.add_column(c, justify="right", no_wrap=c == "from")
        for r in self.cold_start.periods:
            t.add_row(
                str(r.period),
                f"{r.start:%Y-%m-%d}",
                num(r.n_events),
                pct(r.new_user_share),
                pct(r.new_user_event_share),
                pct(r.new_item_share),
                pct(r.new_item_event_share),
            )
        cs = self.cold_start
        t.add_row(
            "mean",
            "",
            "",
            pct(cs.mean_new_user_share),
            pct(cs.mean_new_user_event_share),
            pct(cs.mean_new_item_share),
            pct(cs.mean_new_item_event_share),
            style="bold",
        )
        return t

    def _drift_table(self) -> Table:
        from rich.table import Table

        t = Table(
            title=f"popularity drift (top-{self.drift.top_k} vs previous period)",
            title_justify="left",
        )
        for c in ("period", "Jaccard", "Spearman", "items compared"):
            t.add_column(c, justify="right")
        for r in self.drift.periods:
            t.add_row(
                str(r.period),
                "n/a" if r.jaccard is None else f"{r.jaccard:.2f}",
                "n/a" if r.spearman is None else f"{r.spearman:.2f}",
                num(r.n_compared),
            )
        return t

    def _metadata_table(self) -> Table:
        from rich.markup import escape
        from rich.table import Table

        md = self.metadata
        t = Table(title="catalog", title_justify="left")
        t.add_column("attribute")
        t.add_column("filled", justify="right")
        t.add_column("descriptive")
        t.add_row("items in the catalog", num(md.n_catalog_items), "", style="bold")
        t.add_row("event items in the catalog", pct(md.catalog_coverage), "", style="bold")
        for name, share in md.attribute_coverage.items():
            t.add_row(
                escape(name + (" (extra)" if name in md.extra_attributes else "")),
                pct(share),
                "yes" if name in md.descriptive_attributes else "",
            )
        return t

    def _strategy_text(self) -> RenderableType:
        from rich.text import Text

        s = self.strategy
        text = Text()
        text.append("models: ", style="bold")
        text.append(", ".join(s.models) + "\n")
        text.append("why\n", style="bold")
        for r in s.reasons:
            text.append(f"  - {r}\n")
        text.append("not chosen\n", style="bold")
        for a in s.alternatives:
            text.append(f"  - {a.name}: {a.why_not}\n")
        if s.notes:
            text.append("notes\n", style="bold")
            for n in s.notes:
                text.append(f"  - {n}\n")
        text.rstrip()
        return text

    def _advice_table(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        t = Table(title="plan", show_header=False, title_justify="left", show_lines=True)
        t.add_column("topic", style="bold")
        t.add_column("advice")

        def side(label: str, s: ColdStartSide) -> None:
            t.add_row(f"cold start: {label} ({s.severity})", Text("\n".join(s.actions)))

        side("items", self.cold_start_plan.items)
        side("users", self.cold_start_plan.users)
        t.add_row("KPIs", Text("\n".join(f"({k.kind}) {k.name}: {k.why}" for k in self.kpis)))
        lb = self.latency_budget
        t.add_row(f"serving ({lb.mode}, p99 <= {lb.p99_ms} ms)", Text("\n".join(lb.reasons)))
        return t


def profile(
    dataset: Dataset,
    *,
    cold_start_periods: int = 4,
    session_gap_minutes: float = 30.0,
    drift_top_k: int = 100,
    tail_threshold: int = 5,
    advisor: AdvisorConfig | None = None,
) -> DataProfile:
    """Profile a dataset and recommend a strategy for it.

    Args:
        dataset: the dataset, in aisle's canonical schema.
        cold_start_periods: number of equal-width time periods for cold start and drift (>= 2).
        session_gap_minutes: inactivity gap that ends a session when sessions are derived.
        drift_top_k: how many of each period's most frequent items the drift section compares.
        tail_threshold: items with fewer events than this count as the long tail.
        advisor: the advisor's thresholds; the defaults when ``None``.

    Returns:
        The profile: figures, strategy, cold-start plan, KPIs and latency budget.

    Raises:
        ConfigError: a parameter is out of range.
        SchemaError: a required event column is missing.
        DataError: the event log is empty or has events without user or item.

    Example:
        >>> import pandas as pd
        >>> from aisle.data._dataset import Dataset
        >>> events = pd.DataFrame({
        ...     "user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"],
        ...     "event_type": ["click"] * 3,
        ...     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        ... })
        >>> p = profile(Dataset("tiny", events))
        >>> (p.n_users, p.n_items, p.n_events, p.activity.density)
        (2, 2, 3, 0.75)
    """
    from aisle import __version__

    cfg = advisor or AdvisorConfig()
    stats = compute_stats(
        dataset,
        cold_start_periods=cold_start_periods,
        session_gap_minutes=session_gap_minutes,
        drift_top_k=drift_top_k,
        tail_threshold=tail_threshold,
    )
    advice = advise(stats, cfg)
    return DataProfile(
        **dict(stats),
        strategy=advice.strategy,
        cold_start_plan=advice.cold_start_plan,
        kpis=advice.kpis,
        latency_budget=advice.latency_budget,
        advisor_config=cfg,
        provenance=Provenance(
            aisle_version=__version__,
            sources=[
                {"path": s.path, "bytes": s.bytes, "sha256": s.sha256} for s in dataset.sources
            ],
        ),
    )

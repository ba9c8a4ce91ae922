"""The typed, frozen definition of an experiment: variants, unit, layer, metrics, guardrails."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._metrics import METRICS

__all__ = ["N_BUCKETS", "ExperimentSpec", "GuardrailSpec", "HoldoutSpec", "Variant"]

#: Buckets of the hash space; allocations and variant weights are resolved to whole buckets.
N_BUCKETS = 10_000

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter or digit and use only letters, digits, "
            "'_', '.' and '-' (at most 100 characters)"
        )
    return value


class Variant(BaseModel):
    """One arm of an experiment.

    Attributes:
        name: the arm's label (``control``, ``treatment`` ...).
        weight: its relative share of the experiment's traffic.
        model_version: the model version the recommendation service serves to the arm
            (``None``: the service's default).
    """

    model_config = _FROZEN

    name: str
    weight: float = Field(default=1.0, gt=0)
    model_version: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "variant name")


class GuardrailSpec(BaseModel):
    """A guardrail: a metric that must not get worse than a non-inferiority margin.

    Attributes:
        metric: a metric name from :data:`aisle.experiments.METRICS`.
        margin: the largest tolerated harm, in the metric's harmful direction: relative
            (``0.10`` = 10 % worse) when ``relative`` is true, else absolute (``0.002`` =
            0.2 points on a rate).
        relative: whether ``margin`` is relative to the control's value.
    """

    model_config = _FROZEN

    metric: str
    margin: float = Field(gt=0)
    relative: bool = False

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(
                f"unknown guardrail metric {value!r}; valid: {', '.join(sorted(METRICS))}"
            )
        return value


#: Default guardrails: latency p99 +10 %, error rate +0.2 points, fallback rate +0.5 points,
#: return rate +2 points.
DEFAULT_GUARDRAILS: tuple[GuardrailSpec, ...] = (
    GuardrailSpec(metric="latency_p99", margin=0.10, relative=True),
    GuardrailSpec(metric="error_rate", margin=0.002),
    GuardrailSpec(metric="fallback_rate", margin=0.005),
    GuardrailSpec(metric="return_rate", margin=0.02),
)


class HoldoutSpec(BaseModel):
    """A global holdout: units kept out of every experiment (they see the default experience).

    Attributes:
        fraction: the share of units held out, 0 to 0.5.
        salt: the salt of the holdout hash; changing it reshuffles the holdout.
    """

    model_config = _FROZEN

    fraction: float = Field(default=0.0, ge=0, le=0.5)
    salt: str = "global-holdout"


class ExperimentSpec(BaseModel):
    """Everything that defines an experiment. Stored as JSON in the experiment store.

    Attributes:
        name: a unique name (letters, digits, ``_ . -``).
        variants: the arms, at least two, with weights (and model versions).
        control: the arm the others are compared with (default: the first).
        unit: the randomization unit: ``user`` (a user's sessions stay in one arm),
            ``session`` or ``account``.
        salt: the salt of the variant hash (default: the name). Same salt, same assignment.
        layer: the layer; experiments in one layer are mutually exclusive (disjoint bucket
            ranges), experiments in different layers are orthogonal (independent hashes).
        allocation: the share of the layer's traffic the experiment takes (0 to 1].
        bucket_range: the experiment's buckets ``[start, end)`` in its layer, out of
            :data:`N_BUCKETS`; given by the store when the experiment is created.
        primary_metric: the decision metric.
        metrics: secondary metrics (reported, corrected for multiple testing).
        guardrails: metrics with non-inferiority margins.
        window_days: the observation window after exposure (conversions later than this are
            not attributed).
        proxy_window_days: the window of the early proxy (add-to-cart).
        pre_period_days: the pre-period before exposure used by CUPED.
        cuped: whether mean and proportion metrics use CUPED with their pre-period covariates.
        alpha: the significance level.
        correction: the multiple-testing correction the decisions use (both are reported).
        srm_alpha: the sample-ratio-mismatch test level (a failure blocks the verdict).
        tracking_tolerance: event volumes per unit may differ between arms by at most this
            factor before tracking is called inconsistent (a missing event type gives 0).
        duplicate_tolerance: the largest tolerated difference between arms in the share of
            duplicated events (a double-fired event shows up here).
        monitoring: ``fixed_horizon`` refuses a verdict before the planned horizon;
            ``msprt`` gives always-valid p-values that stay valid under peeking.
        duration_days: the planned duration (fixed horizon), from the first exposure.
        planned_units: the planned mature exposed units (fixed horizon; e.g. from the power
            calculator).
        msprt_tau: the mixing standard deviation of the mSPRT, in units of the primary
            metric's per-unit standard deviation (a standardized effect size).
        start: when traffic started (the fixed horizon counts from here; default: the first
            exposure).
        created_at: when the experiment was created.
    """

    model_config = _FROZEN

    name: str
    variants: tuple[Variant, ...] = Field(
        default=(Variant(name="control"), Variant(name="treatment")), min_length=2
    )
    control: str | None = None
    unit: Literal["user", "session", "account"] = "user"
    salt: str | None = None
    layer: str = "default"
    allocation: float = Field(default=1.0, gt=0, le=1)
    bucket_range: tuple[int, int] | None = None
    primary_metric: str = "conversion_rate"
    metrics: tuple[str, ...] = ("revenue_per_user", "ctr", "aov", "add_to_cart_rate")
    guardrails: tuple[GuardrailSpec, ...] = DEFAULT_GUARDRAILS
    window_days: float = Field(default=7.0, gt=0)
    proxy_window_days: float = Field(default=1.0, gt=0)
    pre_period_days: float = Field(default=28.0, gt=0)
    cuped: bool = True
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Literal["bh", "holm"] = "bh"
    srm_alpha: float = Field(default=0.001, gt=0, lt=0.5)
    tracking_tolerance: float = Field(default=10.0, gt=1)
    duplicate_tolerance: float = Field(default=0.05, gt=0, lt=1)
    monitoring: Literal["fixed_horizon", "msprt"] = "fixed_horizon"
    duration_days: float | None = Field(default=14.0, gt=0)
    planned_units: int | None = Field(default=None, ge=2)
    msprt_tau: float = Field(default=0.1, gt=0)
    start: datetime | None = None
    created_at: datetime | None = None

    @field_validator("name", "layer")
    @classmethod
    def _names(cls, value: str) -> str:
        return _check_name(value, "name")

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not a variant; variants: {names}")
        for metric in (self.primary_metric, *self.metrics):
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(sorted(METRICS))}")
        if self.bucket_range is not None:
            lo, hi = self.bucket_range
            if not 0 <= lo < hi <= N_BUCKETS:
                raise ValueError(
                    f"bucket_range must satisfy 0 <= start < end <= {N_BUCKETS}, got {self.bucket_range}"
                )
        if (
            self.monitoring == "fixed_horizon"
            and self.duration_days is None
            and self.planned_units is None
        ):
            raise ValueError("a fixed-horizon experiment needs duration_days or planned_units")
        return self

    @property
    def control_name(self) -> str:
        """The control arm's name."""
        return self.control if self.control is not None else self.variants[0].name

    @property
    def treatments(self) -> tuple[str, ...]:
        """The arms compared with the control."""
        return tuple(v.name for v in self.variants if v.name != self.control_name)

    @property
    def effective_salt(self) -> str:
        """The salt of the variant hash."""
        return self.salt if self.salt is not None else self.name

    @property
    def weights(self) -> dict[str, float]:
        """Each arm's share of the experiment's traffic (sums to 1)."""
        total = sum(v.weight for v in self.variants)
        return {v.name: v.weight / total for v in self.variants}

    @property
    def n_allocated_buckets(self) -> int:
        """How many of the layer's buckets the experiment takes."""
        return max(1, round(self.allocation * N_BUCKETS))

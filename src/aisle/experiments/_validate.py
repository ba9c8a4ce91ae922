"""Validation by simulation: the statistics checked against a shop whose effects are known.

How the data are made (and why that is honest):

1. **One full simulation.** :mod:`aisle.simulate` grows a shop (``pre_days`` of history), then
   replays ``days`` of traffic in which both arms see the same policy, through
   :func:`simulate_experiment`. The real pipeline (:func:`unit_metrics` in DuckDB) turns the
   event log and the first exposures into the per-unit table of the mature exposed users.
2. **Re-randomization.** Each simulated test re-assigns those users with the real salted hash
   under a new salt and runs :func:`analyze_units`, the code every analysis uses. Outcomes are
   the simulated users' own; only the split changes, which is what randomization does. An
   A/B test injects a known effect into the treatment arm (non-converters converted with a
   known probability), sized to the power calculator's MDE at the target power.
3. **Twenty metrics** for the false-discovery check are independent permutations of the
   simulated per-unit columns; two get a known shift in the treatment arm.
4. **The canary** runs :class:`CanaryController` on :class:`SimulatedTraffic` with an injected
   latency regression (and once without).

So the A/A, power and FDR figures are about the tests on this shop's per-unit outcome
distribution (heavy-tailed revenue, sparse conversions), not about an idealized normal model;
they do not re-simulate user behaviour per test.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import brentq

from ._analyze import _clean, analyze_table
from ._assignment import unit_hashes, variant_index
from ._canary import CanaryConfig, CanaryController, SimulatedTraffic
from ._compare import analyze_units, compare_metric
from ._metrics import MetricSpec, tracking_counts, unit_metrics
from ._simulated import simulate_experiment
from ._spec import ExperimentSpec
from ._stats import mde, power

__all__ = [
    "FIGURE_KEYS",
    "ValidationCheck",
    "ValidationConfig",
    "ValidationResult",
    "run_validation",
]

T = TypeVar("T")
Track = Callable[[Iterable[Any], str, int], Iterable[Any]]

#: The keys of ``aisle experiment validate --json``, in order.
FIGURE_KEYS: tuple[str, ...] = (
    "aa_false_positive_rate",
    "power_measured",
    "power_predicted",
    "bh_false_discovery_proportion",
    "cuped_variance_ratio",
    "canary_rolled_back_at_step",
)


class ValidationConfig(BaseModel):
    """The knobs of the validation. The defaults are what ``aisle experiment validate`` runs.

    Attributes:
        seed: the seed of the shop, the salts and the injected effects.
        n_users, n_items, pre_days, days, window_days: the simulated shop and experiment.
        aa_tests: simulated A/A tests.
        ab_tests: simulated A/B tests with the known effect.
        fdr_repetitions: repetitions of the 20-metric false-discovery check.
        fdr_metrics, fdr_true_effects: metrics per repetition, and how many carry an effect.
        fdr_units: units per arm pair in the false-discovery check (a subsample, for speed).
        alpha: the significance level (and the BH target).
        power_target: the power the injected A/B effect is sized for.
        aa_tolerance: the A/A false-positive rate must be within ``alpha ± aa_tolerance``.
        power_tolerance: measured power must be within this of the prediction.
        canary_latency_factor: the injected latency regression of the canary.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=0, ge=0)
    n_users: int = Field(default=20_000, ge=500)
    n_items: int = Field(default=1_000, ge=50)
    pre_days: int = Field(default=28, ge=1)
    days: int = Field(default=14, ge=2)
    window_days: float = Field(default=7.0, gt=0)
    aa_tests: int = Field(default=1_000, ge=10)
    ab_tests: int = Field(default=1_000, ge=10)
    fdr_repetitions: int = Field(default=1_000, ge=10)
    fdr_metrics: int = Field(default=20, ge=2)
    fdr_true_effects: int = Field(default=2, ge=1)
    fdr_units: int = Field(default=6_000, ge=100)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power_target: float = Field(default=0.8, gt=0.1, lt=1)
    aa_tolerance: float = Field(default=0.015, gt=0)
    power_tolerance: float = Field(default=0.05, gt=0)
    canary_latency_factor: float = Field(default=1.5, gt=1)


@dataclass(frozen=True)
class ValidationCheck:
    """One figure against its target.

    Attributes:
        key: the figure's key.
        value: the measured figure.
        target: the target, in words.
        met: whether the target is met (``None`` for figures reported without a target).
    """

    key: str
    value: float | int | None
    target: str
    met: bool | None


@dataclass(frozen=True)
class ValidationResult:
    """What the validation measured.

    Attributes:
        figures: the six figures of ``--json``.
        checks: each figure with its target and MET / MISSED.
        details: how they were obtained (population, effects, per-metric rates, seconds).
    """

    figures: dict[str, float | int | None]
    checks: list[ValidationCheck]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def all_met(self) -> bool:
        """Whether every figure with a target meets it."""
        return all(c.met is not False for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return dict(
            _clean(
                {
                    "figures": self.figures,
                    "checks": [asdict(c) for c in self.checks],
                    "details": self.details,
                }
            )
        )


def _frozen(items: Iterable[T]) -> Iterator[T]:
    """Iterate with the heap frozen (see :func:`_quiet_gc`)."""
    with _quiet_gc():
        yield from items


def _identity(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    yield from items


def _population(cfg: ValidationConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The mature exposed users of one simulated shop (both arms served the same policy)."""
    spec = ExperimentSpec(
        name=f"validation-aa-{cfg.seed}", window_days=cfg.window_days, duration_days=cfg.days
    )
    sx = simulate_experiment(
        spec,
        policies={"control": "popularity", "treatment": "popularity"},
        n_users=cfg.n_users,
        n_items=cfg.n_items,
        pre_days=cfg.pre_days,
        days=cfg.days,
        seed=cfg.seed,
    )
    spec = spec.model_copy(update={"start": sx.start.to_pydatetime()})
    table = unit_metrics(
        sx.events,
        sx.exposures,
        window_days=cfg.window_days,
        pre_period_days=cfg.pre_days,
        as_of=sx.end,
    )
    counts = tracking_counts(sx.events, sx.exposures, as_of=table.as_of)
    full = analyze_table(spec, table, counts, source="simulated A/A (validation)")
    pop = table.mature.drop(columns=["variant"]).reset_index(drop=True)
    info = {
        "simulated_users": cfg.n_users,
        "simulated_events": len(sx.events),
        "exposed_users": len(table.frame),
        "mature_exposed_users": len(pop),
        "conversion_rate": float((pop["purchases"] > 0).mean()),
        "revenue_per_user": float(pop["revenue"].mean()),
        "full_pipeline_aa": {
            "verdict": full.verdict,
            "srm_p": full.srm.p_value,
            "tracking_passed": full.tracking.passed,
            "primary_p": full.metrics[0].p_value if full.metrics else None,
        },
    }
    return pop, info


_ARMS = np.asarray(["control", "treatment", None], dtype=object)


def _split(pop: pd.DataFrame, hashes: Any, salt: str) -> pd.DataFrame:
    """``pop`` with a ``variant`` column from the real hash assignment under ``salt``."""
    arm, _, _ = variant_index(ExperimentSpec(name="v", salt=salt), hashes)
    out = pop.copy(deep=False)
    out["variant"] = pd.Series(_ARMS[arm], index=pop.index, dtype=object)
    return out


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Freeze the heap so statsmodels' ``gc.collect()`` (in Holm) stays cheap in loops."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_validation(
    config: ValidationConfig | None = None, *, track: Track | None = None
) -> ValidationResult:
    """Run the A/A, power, CUPED, false-discovery and canary checks.

    Args:
        config: the knobs (defaults: 1,000 A/A tests, 1,000 A/B tests, 1,000 repetitions of
            20 metrics, seed 0).
        track: wraps an iterable with a progress bar, as ``track(items, description, total)``.

    Returns:
        The six figures, each with its target and verdict, and the details.
    """
    cfg = config or ValidationConfig()
    return _run(cfg, track or _identity)


def _run(cfg: ValidationConfig, tr: Track) -> ValidationResult:
    t0 = time.perf_counter()
    pop, info = _population(cfg)
    hashes = unit_hashes(pop["unit_id"].tolist())
    seconds: dict[str, float] = {"simulation": time.perf_counter() - t0}
    alpha = cfg.alpha

    # 1. A/A: the real split, the real analysis, no effect.
    t = time.perf_counter()
    aa_metrics = ["conversion_rate", "revenue_per_user", "ctr", "aov"]
    aa_p = np.empty((cfg.aa_tests, len(aa_metrics)))
    srm_fail = 0
    for r in tr(_frozen(range(cfg.aa_tests)), "A/A tests", cfg.aa_tests):
        units = _split(pop, hashes, f"aa-{cfg.seed}-{r}")
        res = analyze_units(
            units, aa_metrics, control="control", treatments=["treatment"], alpha=alpha
        )
        aa_p[r] = [x.p_value for x in res]
        n_t = int((units["variant"] == "treatment").sum())
        from ._stats import srm_check

        srm_fail += not srm_check(
            {"control": len(units) - n_t, "treatment": n_t}, {"control": 1, "treatment": 1}
        ).passed
    fpr = float((aa_p[:, 0] < alpha).mean())
    seconds["aa"] = time.perf_counter() - t

    # 2. A/B with a known effect on conversion, sized to the calculator's MDE.
    t = time.perf_counter()
    conv = (pop["purchases"].to_numpy() > 0).astype(np.float64)
    p_c = float(conv.mean())
    n_arm = len(pop) / 2
    sd_c = math.sqrt(p_c * (1 - p_c))

    def _power_of(d: float) -> float:
        return power(d, sd_c, n_arm, alpha=alpha, sd_treatment=math.sqrt((p_c + d) * (1 - p_c - d)))

    # the effect the calculator says is detected with the target power (treatment variance included)
    effect = float(
        brentq(lambda d: _power_of(d) - cfg.power_target, 1e-9, min(0.5, 1 - p_c) - 1e-9)
    )
    flip_p = effect / (1 - p_c)
    predicted = _power_of(effect)
    rng = np.random.default_rng([cfg.seed, 0xAB])
    raw_est, cuped_est, raw_sig, cuped_sig = [], [], 0, 0
    rev_raw, rev_cuped = [], []
    for r in tr(_frozen(range(cfg.ab_tests)), "A/B tests", cfg.ab_tests):
        units = _split(pop, hashes, f"ab-{cfg.seed}-{r}")
        treat = units["variant"].to_numpy(dtype=object) == "treatment"
        flip = treat & (conv == 0) & (rng.random(len(units)) < flip_p)
        units["purchases"] = np.where(flip, 1.0, units["purchases"].to_numpy())
        plain = compare_metric(
            units,
            "conversion_rate",
            control="control",
            treatment="treatment",
            alpha=alpha,
            cuped=False,
        )
        adj = compare_metric(
            units,
            "conversion_rate",
            control="control",
            treatment="treatment",
            alpha=alpha,
            cuped=True,
        )
        raw_est.append(plain.estimate)
        cuped_est.append(adj.estimate)
        raw_sig += plain.p_value < alpha
        cuped_sig += adj.p_value < alpha
        rp = compare_metric(
            units,
            "revenue_per_user",
            control="control",
            treatment="treatment",
            alpha=alpha,
            cuped=False,
        )
        rc = compare_metric(
            units,
            "revenue_per_user",
            control="control",
            treatment="treatment",
            alpha=alpha,
            cuped=True,
        )
        rev_raw.append(rp.estimate)
        rev_cuped.append(rc.estimate)
    measured = raw_sig / cfg.ab_tests
    cuped_ratio = float(np.var(cuped_est, ddof=1) / np.var(raw_est, ddof=1))
    seconds["ab"] = time.perf_counter() - t

    # 3. False discoveries under BH: 20 metrics, 2 with a true effect.
    t = time.perf_counter()
    fdp, power_true, n_disc = _fdr(cfg, pop, tr)
    seconds["fdr"] = time.perf_counter() - t

    # 4. Canary with an injected latency regression (and one without).
    t = time.perf_counter()
    controller = CanaryController(CanaryConfig())
    bad = controller.run(
        SimulatedTraffic(candidate_latency_factor=cfg.canary_latency_factor, seed=cfg.seed),
        run_id="validation-regression",
    )
    good = controller.run(SimulatedTraffic(seed=cfg.seed), run_id="validation-clean")
    seconds["canary"] = time.perf_counter() - t

    figures: dict[str, float | int | None] = {
        "aa_false_positive_rate": round(fpr, 4),
        "power_measured": round(measured, 4),
        "power_predicted": round(predicted, 4),
        "bh_false_discovery_proportion": round(fdp, 4),
        "cuped_variance_ratio": round(cuped_ratio, 4),
        "canary_rolled_back_at_step": bad.rolled_back_at_step,
    }
    first = bad.first_checked_step
    checks = [
        ValidationCheck(
            "aa_false_positive_rate",
            figures["aa_false_positive_rate"],
            f"{alpha:.0%} ± {cfg.aa_tolerance * 100:.1f} points ({cfg.aa_tests:,} A/A tests)",
            abs(fpr - alpha) <= cfg.aa_tolerance + 1e-12,
        ),
        ValidationCheck(
            "power_measured",
            figures["power_measured"],
            f"within ± {cfg.power_tolerance * 100:.0f} points of power_predicted ({predicted:.3f})",
            abs(measured - predicted) <= cfg.power_tolerance + 1e-12,
        ),
        ValidationCheck(
            "power_predicted",
            figures["power_predicted"],
            "calculator (statsmodels NormalIndPower)",
            None,
        ),
        ValidationCheck(
            "bh_false_discovery_proportion",
            figures["bh_false_discovery_proportion"],
            f"<= {alpha:g} (BH target; {cfg.fdr_metrics} metrics, {cfg.fdr_true_effects} true effects, "
            f"{cfg.fdr_repetitions:,} repetitions)",
            fdp <= alpha,
        ),
        ValidationCheck(
            "cuped_variance_ratio",
            figures["cuped_variance_ratio"],
            "< 1 (variance of the CUPED estimate / raw estimate, conversion rate)",
            cuped_ratio < 1,
        ),
        ValidationCheck(
            "canary_rolled_back_at_step",
            figures["canary_rolled_back_at_step"],
            f"= {first} (first step where the guardrails are checked)",
            bad.rolled_back_at_step is not None and bad.rolled_back_at_step == first,
        ),
    ]
    details = {
        "config": cfg.model_dump(),
        "population": info,
        "aa": {
            "tests": cfg.aa_tests,
            "metric": "conversion_rate (CUPED on)",
            "false_positive_rate_by_metric": {
                m: float((aa_p[:, k] < alpha).mean()) for k, m in enumerate(aa_metrics)
            },
            "srm_failures": int(srm_fail),
        },
        "ab": {
            "tests": cfg.ab_tests,
            "baseline_rate": p_c,
            "true_effect_absolute": effect,
            "true_effect_relative": effect / p_c,
            "units_per_arm_expected": n_arm,
            "test": "two-proportion z (CUPED off), as the calculator assumes",
            "power_with_cuped": cuped_sig / cfg.ab_tests,
            "power_predicted_with_cuped_variance": power(
                effect,
                sd_c * math.sqrt(cuped_ratio),
                n_arm,
                alpha=alpha,
                sd_treatment=math.sqrt((p_c + effect) * (1 - p_c - effect) * cuped_ratio),
            ),
            "cuped_variance_ratio_revenue_per_user": float(
                np.var(rev_cuped, ddof=1) / np.var(rev_raw, ddof=1)
            ),
        },
        "fdr": {
            "repetitions": cfg.fdr_repetitions,
            "metrics": cfg.fdr_metrics,
            "true_effects": cfg.fdr_true_effects,
            "units": min(cfg.fdr_units, len(pop)),
            "mean_discoveries": n_disc,
            "power_on_true_effects": power_true,
            "expected_fdr_bound": alpha
            * (cfg.fdr_metrics - cfg.fdr_true_effects)
            / cfg.fdr_metrics,
        },
        "canary": {
            "with_regression": bad.to_dict(),
            "without_regression": {
                "status": good.status,
                "final_fraction": good.final_fraction,
                "decisions": [(d.step, d.fraction, d.action) for d in good.decisions],
            },
        },
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    return ValidationResult(figures=figures, checks=checks, details=details)


def _fdr(cfg: ValidationConfig, pop: pd.DataFrame, tr: Track) -> tuple[float, float, float]:
    rng = np.random.default_rng([cfg.seed, 0xFD])
    n = min(cfg.fdr_units, len(pop))
    base = pop.iloc[rng.choice(len(pop), n, replace=False)].reset_index(drop=True)
    hashes = unit_hashes(base["unit_id"].tolist())
    sources = [
        "clicks",
        "views",
        "carts",
        "purchases",
        "revenue",
        "pre_views",
        "pre_clicks",
        "pre_revenue",
    ]
    cols: dict[str, np.ndarray] = {}
    metrics: list[MetricSpec] = []
    for j in range(cfg.fdr_metrics):
        src = sources[j % len(sources)]
        name = f"m{j:02d}_{src}"
        cols[name] = base[src].to_numpy(dtype=np.float64)[rng.permutation(n)]
        metrics.append(MetricSpec(name=name, kind="mean", numerator=name))
    true_names = [m.name for m in metrics[: cfg.fdr_true_effects]]
    shifts = {
        m: mde(float(np.std(cols[m], ddof=1)), n / 2, power_target=0.9, alpha=cfg.alpha)
        for m in true_names
    }
    frame = pd.DataFrame({"unit_id": base["unit_id"].to_numpy(), **cols})
    fdps, hits, discoveries = [], 0, 0
    for r in tr(_frozen(range(cfg.fdr_repetitions)), "BH, 20 metrics", cfg.fdr_repetitions):
        units = _split(frame, hashes, f"fdr-{cfg.seed}-{r}")
        treat = units["variant"].to_numpy(dtype=object) == "treatment"
        for m, s in shifts.items():
            units[m] = units[m].to_numpy() + np.where(treat, s, 0.0)
        res = analyze_units(
            units,
            metrics,
            control="control",
            treatments=["treatment"],
            alpha=cfg.alpha,
            cuped=False,
            correction="bh",
        )
        found = [x.metric for x in res if x.significant]
        false = sum(1 for x in found if x not in shifts)
        fdps.append(false / max(len(found), 1))
        hits += sum(1 for x in found if x in shifts)
        discoveries += len(found)
    reps = cfg.fdr_repetitions
    return float(np.mean(fdps)), hits / (reps * len(shifts)), discoveries / reps

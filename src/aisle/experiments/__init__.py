"""Online experimentation: assignment, analysis with guardrails and FDR control, canaries.

Assignment (:class:`Assigner`, :func:`assign_variants`) buckets units by a salted hash, with
layers (mutually exclusive within, orthogonal across), traffic allocation and a global
holdout; :class:`ExperimentStore` keeps definitions, assignments and exposures (SQLite by
default). :func:`analyze` turns an event log and exposures into per-unit metrics through
DuckDB and compares arms (Welch t, two-proportion z, delta method, CUPED), with SRM and
tracking checks that block the verdict, BH and Holm corrections, guardrails with
non-inferiority margins, delayed-conversion windows, early proxies and sequential monitoring
(mSPRT or a fixed horizon). :class:`CanaryController` ramps a candidate model behind the
guardrails. :func:`run_validation` checks the statistics against a simulated shop whose
effects are known, and :func:`write_report` renders HTML and JSON reports.

Example:
    >>> from aisle.experiments import ExperimentSpec, assign_variants
    >>> spec = ExperimentSpec(name="new-ranker")
    >>> sorted(assign_variants(spec, ["u1", "u2", "u3"])["variant"].unique())
    ['control', 'treatment']
"""

from ._analyze import AnalysisResult, analyze, analyze_table, cumulative_effects
from ._assignment import (
    Assigner,
    VariantAssignment,
    allocate_buckets,
    assign_variants,
    bucket_of,
    salt_hash,
    unit_hashes,
    variant_index,
)
from ._canary import (
    CanaryConfig,
    CanaryController,
    CanaryDecision,
    CanaryObservation,
    CanaryResult,
    SimulatedTraffic,
    TrafficSource,
    canary_route,
)
from ._compare import (
    GuardrailResult,
    MetricResult,
    analyze_units,
    check_guardrail,
    compare_metric,
    compare_moments,
)
from ._delayed import ProxyResult, maturity_table, proxy_report
from ._exposure import ExposureLogger, exposures_from_events, first_exposures
from ._metrics import (
    METRICS,
    MetricSpec,
    UnitTable,
    get_metric,
    request_latencies,
    tracking_counts,
    unit_metrics,
)
from ._report import render_html, write_report
from ._sequential import FixedHorizon, always_valid, msprt_lambda
from ._simulated import POLICIES, SimulatedExperiment, simulate_experiment
from ._spec import (
    DEFAULT_GUARDRAILS,
    N_BUCKETS,
    ExperimentSpec,
    GuardrailSpec,
    HoldoutSpec,
    Variant,
)
from ._stats import (
    ArmMoments,
    CenteredMoments,
    CupedMoments,
    SRMResult,
    TestStats,
    adjust_pvalues,
    cuped_from_moments,
    cuped_moments,
    delta_ratio_moments,
    mde,
    power,
    quantile_moments,
    relative_interval,
    sample_size,
    srm_check,
    two_proportion_ztest,
    welch_test,
    z_test,
)
from ._store import ExperimentStore, SQLiteExperimentStore, StoreConfig, open_store
from ._tracking import TrackingResult, tracking_check
from ._validate import (
    FIGURE_KEYS,
    ValidationCheck,
    ValidationConfig,
    ValidationResult,
    run_validation,
)

__all__ = [
    "DEFAULT_GUARDRAILS",
    "FIGURE_KEYS",
    "METRICS",
    "N_BUCKETS",
    "POLICIES",
    "AnalysisResult",
    "ArmMoments",
    "Assigner",
    "CanaryConfig",
    "CanaryController",
    "CanaryDecision",
    "CanaryObservation",
    "CanaryResult",
    "CenteredMoments",
    "CupedMoments",
    "ExperimentSpec",
    "ExperimentStore",
    "ExposureLogger",
    "FixedHorizon",
    "GuardrailResult",
    "GuardrailSpec",
    "HoldoutSpec",
    "MetricResult",
    "MetricSpec",
    "ProxyResult",
    "SQLiteExperimentStore",
    "SRMResult",
    "SimulatedExperiment",
    "SimulatedTraffic",
    "StoreConfig",
    "TestStats",
    "TrackingResult",
    "TrafficSource",
    "UnitTable",
    "ValidationCheck",
    "ValidationConfig",
    "ValidationResult",
    "Variant",
    "VariantAssignment",
    "adjust_pvalues",
    "allocate_buckets",
    "always_valid",
    "analyze",
    "analyze_table",
    "analyze_units",
    "assign_variants",
    "bucket_of",
    "canary_route",
    "check_guardrail",
    "compare_metric",
    "compare_moments",
    "cumulative_effects",
    "cuped_from_moments",
    "cuped_moments",
    "delta_ratio_moments",
    "exposures_from_events",
    "first_exposures",
    "get_metric",
    "maturity_table",
    "mde",
    "msprt_lambda",
    "open_store",
    "power",
    "proxy_report",
    "quantile_moments",
    "relative_interval",
    "render_html",
    "request_latencies",
    "run_validation",
    "salt_hash",
    "sample_size",
    "simulate_experiment",
    "srm_check",
    "tracking_check",
    "tracking_counts",
    "two_proportion_ztest",
    "unit_hashes",
    "unit_metrics",
    "variant_index",
    "welch_test",
    "write_report",
    "z_test",
]

"""Offline evaluation: ranking and beyond-accuracy metrics, protocols, segments with confidence
intervals, paired significance tests and ablations."""

from aisle.evaluation._ablation import Ablation, AblationRow, run_ablation
from aisle.evaluation._cold_start import (
    ColdStartResult,
    attribute_popularity,
    cold_start_items,
    cold_start_users,
    split_cold_items,
    split_cold_users,
)
from aisle.evaluation._evaluate import EvaluationResult, evaluate, intra_list_diversity
from aisle.evaluation._metrics import (
    ACCURACY_METRICS,
    BEYOND_ACCURACY_METRICS,
    beyond_accuracy,
    gini,
    per_user_metrics,
)
from aisle.evaluation._segments import SEGMENTATIONS, item_popularity_groups, segment_results
from aisle.evaluation._stats import (
    ConfidenceInterval,
    PairedComparison,
    bootstrap_ci,
    paired_comparison,
)

__all__ = [
    "ACCURACY_METRICS",
    "BEYOND_ACCURACY_METRICS",
    "SEGMENTATIONS",
    "Ablation",
    "AblationRow",
    "ColdStartResult",
    "ConfidenceInterval",
    "EvaluationResult",
    "PairedComparison",
    "attribute_popularity",
    "beyond_accuracy",
    "bootstrap_ci",
    "cold_start_items",
    "cold_start_users",
    "evaluate",
    "gini",
    "intra_list_diversity",
    "item_popularity_groups",
    "paired_comparison",
    "per_user_metrics",
    "run_ablation",
    "segment_results",
    "split_cold_items",
    "split_cold_users",
]

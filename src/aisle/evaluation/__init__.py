"""Offline evaluation: ranking metrics, beyond-accuracy metrics and the evaluation driver."""

from aisle.evaluation._evaluate import EvaluationResult, evaluate
from aisle.evaluation._metrics import (
    ACCURACY_METRICS,
    BEYOND_ACCURACY_METRICS,
    beyond_accuracy,
    gini,
    per_user_metrics,
)

__all__ = [
    "ACCURACY_METRICS",
    "BEYOND_ACCURACY_METRICS",
    "EvaluationResult",
    "beyond_accuracy",
    "evaluate",
    "gini",
    "per_user_metrics",
]

"""Off-policy (counterfactual) evaluation: a new policy's value estimated from another's logs.

Estimators (DM, IPS, clipped IPS, SNIPS, DR, switch-DR, DR with shrinkage) for single slots and
ranked lists (independent IPS per slot under the position-based model), each with a seeded
bootstrap interval and the effective sample size; support and weight diagnostics; target
policies (top-k, epsilon-greedy, softmax, any aisle model, the Open Bandit Dataset's Bernoulli
TS); and the OBD real-data protocol. See docs/ope.md.

Example:
    >>> from aisle.evaluation.ope import LoggedFeedback, estimate_policy_value, top_k_policy
    >>> log = LoggedFeedback.from_arrays([0, 1, 1, 0], [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5])
    >>> result = estimate_policy_value(log, top_k_policy([0.2, 0.9]), "ips,snips", n_bootstrap=0)
    >>> result["ips"].estimate, result["snips"].estimate
    (0.5, 0.5)
"""

from aisle.evaluation.ope._data import LoggedFeedback, as_feedback
from aisle.evaluation.ope._diagnostics import (
    Diagnostics,
    UnsupportedActionWarning,
    WeightSummary,
    diagnose,
    importance_weights,
    kish_ess,
)
from aisle.evaluation.ope._estimators import (
    DEFAULT_ESTIMATORS,
    ESTIMATORS,
    REWARD_MODEL_ESTIMATORS,
    OPEConfig,
    OPEResult,
    PolicyEstimate,
    estimate_policy_value,
    make_config,
    parse_estimators,
)
from aisle.evaluation.ope._policies import (
    DEFAULT_BTS_DRAWS,
    ActionDistribution,
    PolicyKind,
    SupportsScore,
    bts_policy,
    epsilon_greedy_policy,
    model_policy,
    obd_bts_policy,
    plackett_luce_marginals,
    rank_marginals,
    simulate_bts_rankings,
    softmax_policy,
    top_k_policy,
    uniform_policy,
)
from aisle.evaluation.ope._protocol import (
    DIRECTIONS,
    ComparedEstimate,
    OBDComparison,
    compare_on_obd,
    obd_relative_error_table,
    relative_error_frame,
)
from aisle.evaluation.ope._reward import PositionBasedRewardModel, RewardModel

__all__ = [
    "DEFAULT_BTS_DRAWS",
    "DEFAULT_ESTIMATORS",
    "DIRECTIONS",
    "ESTIMATORS",
    "REWARD_MODEL_ESTIMATORS",
    "ActionDistribution",
    "ComparedEstimate",
    "Diagnostics",
    "LoggedFeedback",
    "OBDComparison",
    "OPEConfig",
    "OPEResult",
    "PolicyEstimate",
    "PolicyKind",
    "PositionBasedRewardModel",
    "RewardModel",
    "SupportsScore",
    "UnsupportedActionWarning",
    "WeightSummary",
    "as_feedback",
    "bts_policy",
    "compare_on_obd",
    "diagnose",
    "epsilon_greedy_policy",
    "estimate_policy_value",
    "importance_weights",
    "kish_ess",
    "make_config",
    "model_policy",
    "obd_bts_policy",
    "obd_relative_error_table",
    "parse_estimators",
    "plackett_luce_marginals",
    "rank_marginals",
    "relative_error_frame",
    "simulate_bts_rankings",
    "softmax_policy",
    "top_k_policy",
    "uniform_policy",
]

"""A seeded synthetic shop with a known ground truth.

:func:`simulate` and :class:`ShopSimulator` grow a catalog (categories, brands, prices,
margins, stock, seasonality), users with latent tastes and segments, and an event log
(view → click → add_to_cart → purchase → return, with position bias) in aisle's canonical
schema. The ground truth (:class:`ShopTruth`) gives the true relevance of any user-item pair,
and :meth:`ShopSimulator.simulate_policy` replays a recommendation policy against the same
world (A/A and A/B tests with known effects, feedback loops).

Example:
    >>> from aisle.simulate import simulate
    >>> shop = simulate(n_users=300, n_items=150, n_days=14, seed=7)
    >>> list(shop.dataset.events.columns)[:5]
    ['event_id', 'user_id', 'item_id', 'event_type', 'timestamp']
"""

from ._config import DeviceMix, PageMix, Segment, SimulatorConfig
from ._policy import (
    OraclePolicy,
    Policy,
    PolicyRun,
    PolicySummary,
    PopularityPolicy,
    RandomPolicy,
    RankedLists,
    SupportsRecommend,
)
from ._shop import ShopSimulator, SimulatedShop, simulate
from ._world import ShopState, ShopTruth, examination

__all__ = [
    "DeviceMix",
    "OraclePolicy",
    "PageMix",
    "Policy",
    "PolicyRun",
    "PolicySummary",
    "PopularityPolicy",
    "RandomPolicy",
    "RankedLists",
    "Segment",
    "ShopSimulator",
    "ShopState",
    "ShopTruth",
    "SimulatedShop",
    "SimulatorConfig",
    "SupportsRecommend",
    "examination",
    "simulate",
]

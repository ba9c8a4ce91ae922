"""Cold-start protocols: items and users that training never saw.

**New items** (:func:`cold_start_items`). A share of the items (drawn with ``seed`` among the
items that have events and a catalog row) is held out *entirely*: every event on them goes to
the test side, none to training (checked: :func:`split_cold_items` raises if one leaks, and each
fitted model's vocabulary is checked too). Models are fitted on the other events with the catalog
rows of the other items, then receive the held-out items' catalog rows through ``add_items`` (a
new listing on day one: metadata, no interactions). For the training users who interacted with
held-out items, each model ranks

* ``candidates="cold"``: the held-out items only, or
* ``candidates="all"``: every item, known and held-out together (items in the user's training
  history excluded);

and the positive test events on held-out items are the relevant set. Baselines: ``pop`` cannot
know the popularity of an item without events, so here it is **attribute popularity**: the mean
training popularity (distinct users) of the known items sharing each of the item's catalog
attributes (category levels, brand, price bucket ...), averaged over its attributes (an item with
no attribute gets the mean item popularity); under ``candidates="all"`` known items keep their
own popularity. ``random`` ranks at random (seeded). Other models must offer the cold-item API
(``content``, ``content-cf``, ``hybrid``).

**New users** (:func:`cold_start_users`). A share of the users with more than
``max(history_sizes)`` events is held out entirely (none of their events in training; checked).
Each held-out user's events in time order are cut after the first ``max(history_sizes)``: the
events after the cut are the target (the same relevant set for every history size, items of the
cut-off prefix removed from it); for each ``n`` in ``history_sizes`` models get the first ``n``
events as fold-in history (``n = 0``: nothing, so every model falls back to its unknown-user
policy, training popularity). ``onboarding`` is :class:`~aisle.models.Onboarding` fed a
*simulated questionnaire*: the user's most frequent categories (and brand) among their first
``max(history_sizes)`` events, and their segment from the users table; it uses no events.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aisle.data._dataset import Dataset
from aisle.data._feedback import FeedbackConfig, build_interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, DataWarning
from aisle.evaluation._metrics import per_user_metrics
from aisle.evaluation._runner import code_version, dataset_checksum, parse_metrics
from aisle.models._base import Recommender
from aisle.models._coldstart import Onboarding
from aisle.models._content import AttributeEncoder, ColdItemsMixin, _catalog_by_id, _label_tokens
from aisle.models._registry import get_model_class

__all__ = [
    "COLD_START_METRICS",
    "ColdItemSplit",
    "ColdStartResult",
    "ColdUserSplit",
    "attribute_popularity",
    "cold_start_items",
    "cold_start_users",
    "split_cold_items",
    "split_cold_users",
]

COLD_START_METRICS: tuple[str, ...] = ("ndcg@10", "recall@20", "hr@10")
#: Names the protocols understand besides registered models.
ITEM_BASELINES = ("pop", "random")
USER_BASELINES = ("onboarding", "random")

Progress = Callable[[str], Any]


@dataclass
class ColdStartResult:
    """The figures of one cold-start protocol run.

    Attributes:
        protocol: what was held out and how (dataset, checksum, fractions, seed, candidates,
            counts, notes on the baselines, code version).
        rows: one dict per model (and per history size for users): ``model``, the metrics,
            ``fit_seconds`` and, for users, ``history_events``.
    """

    protocol: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "results": self.rows}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


# ------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColdItemSplit:
    """Events split by item: ``train`` has no event on any of ``held_out`` items."""

    train: pd.DataFrame
    test: pd.DataFrame
    held_out: np.ndarray
    params: dict[str, Any]


def split_cold_items(events: pd.DataFrame, catalog: pd.DataFrame | None, *, fraction: float = 0.2,
                     seed: int = 0) -> ColdItemSplit:
    """Hold out a share of the items entirely (every event on them goes to ``test``).

    Items are drawn uniformly (seeded, from the sorted ids) among the items that have events and,
    when a catalog is given, a catalog row (an item without one has no content to start from).

    Raises:
        ConfigError: ``fraction`` is not in (0, 1).
        DataError: too few items, or (never expected) a held-out item left in ``train``.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"item fraction must be in (0, 1), got {fraction}")
    item_col = events["item_id"].astype(str).to_numpy(dtype=object)
    items = np.unique(item_col)
    if catalog is not None:
        items = items[np.isin(items, catalog["item_id"].astype(str).to_numpy(dtype=object))]
    n_out = round(fraction * len(items))
    if n_out < 1 or n_out >= len(items):
        raise DataError(f"cannot hold out {fraction:.0%} of {len(items)} items with catalog rows")
    held = np.sort(np.random.default_rng(seed).permutation(items)[:n_out].astype(str)).astype(object)
    mask = np.isin(item_col, held)
    train, test = events[~mask], events[mask]
    leaked = np.intersect1d(train["item_id"].astype(str).to_numpy(dtype=object), held)
    if leaked.size:  # pragma: no cover - a bug guard
        raise DataError(f"{leaked.size} held-out items have training events")
    return ColdItemSplit(train, test, held, {"item_fraction": fraction, "seed": seed, "n_held_out_items": n_out,
                                             "n_eligible_items": len(items)})


@dataclass(frozen=True)
class ColdUserSplit:
    """Events split by user: ``train`` has no event of any ``held_out`` user.

    ``prefix`` holds each held-out user's first ``max_history`` events (the candidate fold-in
    history, ``rank`` 0, 1, ... in time order) and ``target`` the rest.
    """

    train: pd.DataFrame
    prefix: pd.DataFrame
    target: pd.DataFrame
    held_out: np.ndarray
    params: dict[str, Any]


def split_cold_users(events: pd.DataFrame, *, fraction: float = 0.2, max_history: int = 5,
                     seed: int = 0) -> ColdUserSplit:
    """Hold out a share of the users with more than ``max_history`` events, entirely."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"user fraction must be in (0, 1), got {fraction}")
    if max_history < 0:
        raise ConfigError(f"max_history must be >= 0, got {max_history}")
    users = events["user_id"].astype(str).to_numpy(dtype=object)
    counts = pd.Series(users).value_counts()
    eligible = np.sort(counts.index[counts.to_numpy() > max_history].to_numpy(dtype=object).astype(str))
    n_out = round(fraction * len(eligible))
    if n_out < 1 or n_out >= len(np.unique(users)):
        raise DataError(f"cannot hold out {fraction:.0%} of {len(eligible)} users with more than {max_history} events")
    held = np.sort(np.random.default_rng(seed).permutation(eligible)[:n_out]).astype(object)
    mask = np.isin(users, held)
    train = events[~mask]
    if np.isin(train["user_id"].astype(str).to_numpy(dtype=object), held).any():  # pragma: no cover
        raise DataError("held-out users have training events")
    out = events[mask].copy()
    out["_order"] = np.arange(len(out))
    out = out.sort_values(["timestamp", "_order"], kind="stable")
    rank = out.groupby("user_id", sort=False).cumcount().to_numpy()
    out = out.drop(columns="_order")
    prefix = out[rank < max_history].assign(rank=rank[rank < max_history])
    target = out[rank >= max_history]
    return ColdUserSplit(train, prefix, target, held, {"user_fraction": fraction, "seed": seed,
                                                       "max_history": max_history, "n_held_out_users": n_out,
                                                       "n_eligible_users": len(eligible)})


# ------------------------------------------------------------------------------------------
# baselines
# ------------------------------------------------------------------------------------------


def attribute_popularity(popularity: np.ndarray, known_ids: np.ndarray, catalog: pd.DataFrame,
                         new_ids: np.ndarray, columns: Sequence[str] = ("category", "brand", "price")) -> np.ndarray:
    """Popularity estimates of items without events from the known items sharing their attributes.

    Each attribute token (see :func:`~aisle.models.attribute_matrix`) gets the mean popularity of
    the known items carrying it; a new item gets the mean over its tokens (the mean item
    popularity when it has none known).
    """
    cols = [c for c in columns if c in catalog.columns and catalog[c].notna().any()]
    mean_pop = float(np.mean(popularity)) if popularity.size else 0.0
    if not cols:
        return np.full(len(new_ids), mean_pop)
    enc = AttributeEncoder(cols).fit(catalog)
    known = enc.transform(catalog, known_ids)
    n_with = np.asarray(known.sum(axis=0)).ravel()
    token_pop = np.divide(np.asarray(known.T @ popularity).ravel(), n_with, out=np.zeros(len(n_with)), where=n_with > 0)
    new = enc.transform(catalog, new_ids)
    new = sp.csr_matrix(new.multiply(sp.csr_matrix((n_with > 0).astype(np.float32))))
    n_tok = np.asarray(new.sum(axis=1)).ravel()
    total = np.asarray(new @ token_pop).ravel()
    return np.where(n_tok > 0, total / np.maximum(n_tok, 1), mean_pop)


def _step(progress: Progress | None) -> Progress:
    return progress or (lambda _d: nullcontext())


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k columns per row (``-1`` where the score is ``-inf``), ties to the lower index."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(scores, order, axis=1)
    out: np.ndarray = np.where(np.isfinite(vals), order, -1)
    return out


def _summarise(top: np.ndarray, relevant: sp.csr_matrix, names: Sequence[str]) -> dict[str, float]:
    ks = sorted({int(m.partition("@")[2]) for m in names})
    bases = sorted({m.partition("@")[0] for m in names})
    if top.shape[1] < max(ks):
        top = np.hstack([top, np.full((top.shape[0], max(ks) - top.shape[1]), -1)])
    per_user = per_user_metrics(top, relevant, ks, bases)
    return {m: float(np.nanmean(per_user[m])) for m in names}


def _make(name: str, configs: Mapping[str, Mapping[str, Any]]) -> Recommender:
    return get_model_class(name)(**dict(configs.get(name, {})))


# ------------------------------------------------------------------------------------------
# new items
# ------------------------------------------------------------------------------------------


def cold_start_items(
    ds: Dataset,
    models: Sequence[str] = ("content-cf", "content", "pop", "random"),
    *,
    item_fraction: float = 0.2,
    candidates: Literal["cold", "all"] = "cold",
    metrics: Sequence[str] = COLD_START_METRICS,
    seed: int = 0,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    feedback: FeedbackConfig | None = None,
    progress: Progress | None = None,
    batch_size: int = 2048,
) -> ColdStartResult:
    """Rank items unseen in training for the users who interacted with them (module docstring).

    Args:
        ds: a dataset with a catalog.
        models: model names: ``pop`` (attribute popularity here), ``random``, or registered
            models with the cold-item API (``content``, ``content-cf``, ``hybrid``).
        item_fraction: share of the eligible items held out.
        candidates: ``"cold"`` ranks the held-out items only, ``"all"`` every item.
        metrics: metric names with cut-offs.
        seed: seed of the item draw (and of ``random``).
        configs: model name -> config overrides.
        feedback: the rules that make events training weights and test relevance.
        progress: ``progress(description)`` returning a context manager (the CLI's ``UI.step``).
        batch_size: users scored at a time (memory: batch_size × candidates floats).

    Returns:
        The protocol and one row of metrics per model.
    """
    if ds.items is None:
        raise DataError(f"dataset {ds.name!r} has no catalog; the item cold-start protocol needs item content")
    if candidates not in ("cold", "all"):
        raise ConfigError(f"candidates must be 'cold' or 'all', got {candidates!r}")
    names = parse_metrics(metrics)
    configs = dict(configs or {})
    for name in models:
        if name not in ITEM_BASELINES:
            klass = get_model_class(name)
            if not issubclass(klass, ColdItemsMixin):
                raise ConfigError(f"model {name!r} cannot score items without interactions; use one of "
                                  f"content, content-cf, hybrid or the baselines {', '.join(ITEM_BASELINES)}")
    step = _step(progress)
    cfg = feedback or FeedbackConfig()
    catalog = ds.items
    with step("hold out items"):
        split = split_cold_items(ds.events, catalog, fraction=item_fraction, seed=seed)
        held = split.held_out
        cat_ids = catalog["item_id"].astype(str)
        train_catalog = catalog[~cat_ids.isin(held)]
        new_catalog = catalog[cat_ids.isin(held)]
        train = build_interactions(split.train, cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            rel_all = build_interactions(split.test, cfg, items=Vocabulary(held))
    rel_users = rel_all.users.ids
    in_train = train.users.index(rel_users, unknown="ignore") >= 0
    rel_matrix = sp.csr_matrix(rel_all.matrix > 0, dtype=np.float32)
    has_rel = np.diff(rel_matrix.indptr) > 0
    keep = in_train & has_rel
    users = [str(u) for u in rel_users[keep]]
    relevant_cold = sp.csr_matrix(rel_matrix[np.flatnonzero(keep)])
    if not users:
        raise DataError("no training user has a relevant event on a held-out item; raise the item fraction")
    n_known = len(train.items)
    if candidates == "all":
        relevant = sp.csr_matrix(sp.hstack([sp.csr_matrix((len(users), n_known)), relevant_cold]))
    else:
        relevant = relevant_cold
    max_k = max(int(m.partition("@")[2]) for m in names)
    train_rows = sp.csr_matrix(train.matrix)[train.users.index(np.asarray(users, dtype=object))]
    rows: list[dict[str, Any]] = []
    n_cand = relevant.shape[1]
    for name in models:
        started = time.perf_counter()
        info: dict[str, Any] = {}
        score: Callable[[list[str]], np.ndarray]
        if name == "pop":
            with step("attribute popularity"):
                pop = np.asarray((sp.csr_matrix(train.matrix) > 0).sum(axis=0), dtype=np.float64).ravel()
                cold_scores = attribute_popularity(pop, train.items.ids, catalog, held)
                line = np.concatenate([pop, cold_scores]) if candidates == "all" else cold_scores
                fit_s = time.perf_counter() - started

            def score(batch: list[str], line: np.ndarray = line) -> np.ndarray:
                return np.tile(line, (len(batch), 1))
        elif name == "random":
            rng = np.random.default_rng(seed)
            fit_s = 0.0

            def score(batch: list[str], rng: np.random.Generator = rng) -> np.ndarray:
                return rng.random((len(batch), n_cand))
        else:
            model = _make(name, configs)
            with step(f"fit {name}"):
                model.fit(train, catalog=train_catalog, users=ds.users, events=split.train)
                fit_s = time.perf_counter() - started
            leaked = model.items_.index(held, unknown="ignore") >= 0
            if leaked.any():  # pragma: no cover - a bug guard
                raise DataError(f"model {name!r} was trained on {int(leaked.sum())} held-out items")
            assert isinstance(model, ColdItemsMixin)
            model.add_items(new_catalog)
            cidx = model.cold_items_.index(held, unknown="ignore")
            if (cidx < 0).any():  # pragma: no cover - add_items takes every catalog row
                raise DataError(f"model {name!r} could not encode {int((cidx < 0).sum())} held-out items")
            cols = np.concatenate([np.arange(n_known), n_known + cidx]) if candidates == "all" else cidx

            def score(batch: list[str], model: ColdItemsMixin = model, cols: np.ndarray = cols) -> np.ndarray:
                full, _, _ = model._all_scores(batch, None, "raise", include_known=candidates == "all")
                out: np.ndarray = full[:, cols]
                return out
            info["params"] = model.config.model_dump(mode="json")  # type: ignore[attr-defined]
        top = np.full((len(users), max_k), -1, dtype=np.int64)
        with step(f"rank new items with {name}"):
            for start in range(0, len(users), batch_size):
                batch = users[start:start + batch_size]
                scores = np.asarray(score(batch), dtype=np.float64)
                if candidates == "all":
                    seen = sp.csr_matrix(train_rows[start:start + len(batch)]).tocoo()
                    scores[seen.row, seen.col] = -np.inf
                part = _top_indices(scores, max_k)
                top[start:start + len(batch), :part.shape[1]] = part
        rows.append({"model": name, **_summarise(top, relevant, names), "fit_seconds": round(fit_s, 3), **info})
    protocol = {
        "kind": "new items", "dataset": ds.name, "dataset_sha256": dataset_checksum(ds), **split.params,
        "candidates": (f"the {len(held)} held-out items" if candidates == "cold"
                       else f"all {n_known} training items and the {len(held)} held-out items (training history excluded)"),
        "relevance": cfg.model_dump(mode="json"),
        "train_events": len(split.train), "test_events": len(split.test),
        "test_users": len(users), "users_skipped_not_in_train": int((~in_train & has_rel).sum()),
        "relevant_pairs": int(relevant_cold.nnz),
        "baselines": {"pop": "attribute popularity: mean training popularity of the known items sharing "
                             "each catalog attribute of the new item (its popularity is unknown)",
                      "random": f"uniform random scores (seed {seed})"},
        "code_version": code_version(),
    }
    return ColdStartResult(protocol, rows)


# ------------------------------------------------------------------------------------------
# new users
# ------------------------------------------------------------------------------------------


def _questionnaire(prefix: pd.DataFrame, catalog: pd.DataFrame | None, n_categories: int = 2
                   ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Simulated onboarding answers: each user's most frequent categories and brand in ``prefix``."""
    cats: dict[str, list[str]] = {}
    brands: dict[str, list[str]] = {}
    if catalog is None or len(prefix) == 0:
        return cats, brands
    frame = _catalog_by_id(catalog)
    found = frame.reindex(pd.Index(prefix["item_id"].astype(str).to_numpy()))
    users = prefix["user_id"].astype(str).to_numpy()
    for col, out, n in (("category", cats, n_categories), ("brand", brands, 1)):
        if col not in found.columns:
            continue
        counts: dict[str, dict[str, int]] = {}
        for u, v in zip(users.tolist(), found[col].tolist(), strict=True):
            for tok in _label_tokens(col, v):
                value = tok.split("=", 1)[1]
                if col == "category" and "/" in value:
                    continue  # top level only: what a questionnaire asks
                counts.setdefault(u, {})[value] = counts.setdefault(u, {}).get(value, 0) + 1
        for u, c in counts.items():
            out[u] = [v for v, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
    return cats, brands


def cold_start_users(
    ds: Dataset,
    models: Sequence[str] = ("onboarding", "pop", "content", "content-cf", "random"),
    *,
    user_fraction: float = 0.2,
    history_sizes: Sequence[int] = (0, 1, 3, 5),
    metrics: Sequence[str] = COLD_START_METRICS,
    seed: int = 0,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    feedback: FeedbackConfig | None = None,
    progress: Progress | None = None,
) -> ColdStartResult:
    """Rank items for users unseen in training, after 0, 1, 3 ... of their events (module docstring).

    Args:
        ds: the dataset (a catalog and users table make ``onboarding`` informative).
        models: registered model names, ``onboarding`` and ``random``.
        user_fraction: share of the eligible users held out.
        history_sizes: numbers of first events given as fold-in history.
        metrics: metric names with cut-offs.
        seed: seed of the user draw (and of ``random``).
        configs: model name -> config overrides.
        feedback: the rules for training weights and test relevance.
        progress: see :func:`cold_start_items`.
    """
    sizes = sorted({int(n) for n in history_sizes})
    if not sizes or sizes[0] < 0:
        raise ConfigError(f"history sizes must be >= 0, got {list(history_sizes)}")
    names = parse_metrics(metrics)
    configs = dict(configs or {})
    for name in models:
        if name not in USER_BASELINES:
            get_model_class(name)
    step = _step(progress)
    cfg = feedback or FeedbackConfig()
    with step("hold out users"):
        split = split_cold_users(ds.events, fraction=user_fraction, max_history=max(sizes), seed=seed)
        train = build_interactions(split.train, cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            rel = build_interactions(split.target, cfg, items=train.items)
    rel_matrix = sp.csr_matrix(rel.matrix > 0, dtype=np.float32)
    # items of the prefix are "seen" at the largest history size: not relevant at any size
    prefix_items = split.prefix.assign(_i=train.items.index(split.prefix["item_id"].astype(str).to_numpy(dtype=object),
                                                            unknown="ignore"))
    prefix_items = prefix_items[prefix_items["_i"] >= 0]
    pu = rel.users.index(prefix_items["user_id"].astype(str).to_numpy(dtype=object), unknown="ignore")
    ok = pu >= 0
    seen = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (pu[ok], prefix_items["_i"].to_numpy()[ok])),
                         shape=rel_matrix.shape)
    rel_matrix = sp.csr_matrix(rel_matrix - rel_matrix.multiply(seen > 0))
    rel_matrix.eliminate_zeros()
    has_rel = np.diff(rel_matrix.indptr) > 0
    users = [str(u) for u in rel.users.ids[has_rel]]
    relevant = sp.csr_matrix(rel_matrix[np.flatnonzero(has_rel)])
    if not users:
        raise DataError("no held-out user has a relevant target event; raise the user fraction")
    max_k = max(int(m.partition("@")[2]) for m in names)
    histories = {n: split.prefix[split.prefix["rank"] < n].drop(columns="rank") for n in sizes}
    rows: list[dict[str, Any]] = []
    item_ids = train.items.ids

    def to_top(rec_items: np.ndarray) -> np.ndarray:
        flat = np.where(rec_items == None, "", rec_items).ravel().astype(object)  # noqa: E711
        return train.items.index(flat, unknown="ignore").reshape(rec_items.shape)

    for name in models:
        started = time.perf_counter()
        if name == "onboarding":
            with step("fit onboarding"):
                ob = Onboarding().fit(train, catalog=ds.items, users=ds.users)
                fit_s = time.perf_counter() - started
                cats, brands = _questionnaire(split.prefix, ds.items)
                recs = ob.recommend(users, max_k, categories=cats, brands=brands)
            top = to_top(recs.items)
            sources = pd.Series(recs.sources).value_counts().to_dict()
            for n in sizes:
                rows.append({"model": name, "history_events": n, **_summarise(top, relevant, names),
                             "fit_seconds": round(fit_s, 3), "sources": sources})
            continue
        if name == "random":
            rng = np.random.default_rng(seed)
            for n in sizes:
                scores = rng.random((len(users), len(item_ids)))
                hist = histories[n]
                hu = Vocabulary(users).index(hist["user_id"].astype(str).to_numpy(dtype=object), unknown="ignore")
                hi = train.items.index(hist["item_id"].astype(str).to_numpy(dtype=object), unknown="ignore")
                okh = (hu >= 0) & (hi >= 0)
                scores[hu[okh], hi[okh]] = -np.inf
                rows.append({"model": name, "history_events": n,
                             **_summarise(_top_indices(scores, max_k), relevant, names), "fit_seconds": 0.0})
            continue
        model = _make(name, configs)
        with step(f"fit {name}"):
            model.fit(train, catalog=ds.items, users=ds.users, events=split.train)
            fit_s = time.perf_counter() - started
        leaked = model.users_.index(np.asarray(users, dtype=object), unknown="ignore") >= 0
        if leaked.any():  # pragma: no cover - a bug guard
            raise DataError(f"model {name!r} was trained on {int(leaked.sum())} held-out users")
        for n in sizes:
            with step(f"{name}: fold in {n} events"), warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                recs = model.recommend(users, max_k, history=histories[n] if n else None,
                                       unknown_users="popular", exclude_seen=True)
            rows.append({"model": name, "history_events": n, **_summarise(to_top(recs.items), relevant, names),
                         "fit_seconds": round(fit_s, 3),
                         "sources": pd.Series(recs.sources).value_counts().to_dict()})
    protocol = {
        "kind": "new users", "dataset": ds.name, "dataset_sha256": dataset_checksum(ds), **split.params,
        "history_sizes": sizes, "candidates": f"all {len(item_ids)} training items (fold-in history excluded)",
        "relevance": cfg.model_dump(mode="json"),
        "train_events": len(split.train), "target_events": len(split.target), "test_users": len(users),
        "relevant_pairs": int(relevant.nnz),
        "baselines": {"onboarding": "Onboarding with a simulated questionnaire: the user's most frequent top-level "
                                    f"categories (2) and brand among their first {max(sizes)} events, and their "
                                    "segment; no events used",
                      "random": f"uniform random scores (seed {seed})",
                      "history 0": "no events: every registered model falls back to training popularity"},
        "code_version": code_version(),
    }
    return ColdStartResult(protocol, rows)

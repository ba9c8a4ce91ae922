"""What the service loads for one model version: the model and the lists its pipeline needs.

A :class:`ServingModel` is immutable once built; hot swapping replaces the whole object, so a
request that started on the old version finishes on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aisle.models import Recommender
from aisle.registry import ModelVersion

__all__ = ["Catalog", "ServingModel", "load_serving_model"]


@dataclass(frozen=True)
class Catalog:
    """Catalog columns the business rules read, by item id.

    Attributes:
        index: item id -> row.
        stock: units in stock (``nan``: unknown, treated as in stock).
        price: price (``nan``: unknown).
        brand: brand per row (``""`` when unknown).
        category: category path per row (``""`` when unknown).
    """

    index: dict[str, int]
    stock: np.ndarray
    price: np.ndarray
    brand: list[str]
    category: list[str]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> Catalog:
        """From a canonical catalog table (or an empty catalog for ``None``)."""
        if frame is None or len(frame) == 0:
            return cls({}, np.zeros(0), np.zeros(0), [], [])
        n = len(frame)

        def col(name: str) -> np.ndarray:
            return frame[name].to_numpy(dtype=np.float64, na_value=np.nan) if name in frame else np.full(n, np.nan)

        def text(name: str) -> list[str]:
            return [str(x) if isinstance(x, str) else "" for x in frame[name]] if name in frame else [""] * n

        return cls({str(i): r for r, i in enumerate(frame["item_id"])}, col("stock"), col("price"),
                   text("brand"), text("category"))

    def in_stock(self, item: str) -> bool:
        """False only when the catalog knows the item has no stock."""
        r = self.index.get(item)
        return True if r is None else not (self.stock[r] <= 0)


@dataclass(frozen=True)
class ServingModel:
    """One model version ready to serve.

    Attributes:
        label: ``name:version`` (or the folder name when served without the registry).
        model: the fitted model.
        catalog: business-rule columns.
        popular: item ids by training popularity, most popular first.
        segment_popular: per user segment, item ids by popularity in that segment.
        user_segment: known users' segments.
        trending: item ids by distinct users in the last 7 days of data.
        new_arrivals: the newest catalog items.
        coview: per item, co-viewed items with cosine similarity (item-kNN).
        curated: the last-resort list.
        version: the registry entry (``None`` when served from a folder).
        known_users: the users the model was trained on.
        fast: the request path's arrays (:class:`aisle.serving._fast.FastIndex`), built at load
            (``None``: built by the engine on first use).
    """

    label: str
    model: Recommender
    catalog: Catalog
    popular: list[str]
    segment_popular: dict[str, list[str]]
    user_segment: dict[str, str]
    trending: list[str]
    new_arrivals: list[str]
    coview: dict[str, list[tuple[str, float]]]
    curated: list[str]
    version: ModelVersion | None = None
    known_users: frozenset[str] = field(default_factory=frozenset)
    fast: Any = field(default=None, compare=False, repr=False)


def _read(path: str | None) -> pd.DataFrame | None:
    if not path or not Path(path).exists():
        return None
    return pd.read_parquet(path)


def coview_neighbors(matrix: sp.csr_matrix, item_ids: np.ndarray, n: int = 20, chunk: int = 2048) -> dict[str, list[tuple[str, float]]]:
    """Top-n co-occurring items per item by cosine over the binary user-item matrix.

    Args:
        matrix: users x items interactions.
        item_ids: the item ids of the columns.
        n: neighbours kept per item.
        chunk: items per block (memory: chunk x n_items floats).
    """
    x = sp.csc_matrix((matrix > 0).astype(np.float32))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()) + 1e-9
    xt = sp.csr_matrix(x.T)
    out: dict[str, list[tuple[str, float]]] = {}
    n_items = x.shape[1]
    for start in range(0, n_items, chunk):
        stop = min(start + chunk, n_items)
        block = np.asarray((xt[start:stop] @ x).todense(), dtype=np.float32)
        block /= norms[start:stop, None] * norms[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        kk = min(n, n_items - 1)
        if kk <= 0:
            break
        top = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
        for r in range(stop - start):
            cols = top[r][np.argsort(-block[r, top[r]])]
            out[str(item_ids[start + r])] = [(str(item_ids[c]), float(block[r, c])) for c in cols if block[r, c] > 0]
    return out


def load_serving_model(
    model_dir: str | Path,
    *,
    version: ModelVersion | None = None,
    curated: tuple[str, ...] = (),
    verify: bool = True,
) -> ServingModel:
    """Load a saved model and build the pipeline's lists.

    Args:
        model_dir: the saved model folder.
        version: its registry entry; its sha256 is checked first and its ``extras`` name the
            catalog, events and users files.
        curated: the last-resort list (default: best-stocked catalog items, else popular items).
        verify: check the artifact's sha256 (raises :class:`~aisle.registry.ArtifactIntegrityError`).
    """
    if version is not None and verify:
        version.verify()
    model = Recommender.load(model_dir)
    extras = dict(version.extras) if version is not None else {}
    if not extras:  # a folder from the quickstart: look for its serving side files
        side = Path(model_dir).resolve().parent.parent / "serving"
        extras = {k: str(side / f"{k}.parquet") for k in ("catalog", "events", "users")}
    catalog_frame = _read(extras.get("catalog"))
    events = _read(extras.get("events"))
    users = _read(extras.get("users"))
    item_ids = model.items_.ids
    popular = [str(i) for i in item_ids[np.argsort(-model.item_popularity_, kind="stable")]]

    trending: list[str] = []
    if events is not None and len(events):
        end = events["timestamp"].max()
        recent = events[events["timestamp"] >= end - pd.Timedelta(days=7)]
        trending = [str(i) for i in recent.groupby("item_id")["user_id"].nunique().sort_values(ascending=False).index[:200]]

    segment_popular: dict[str, list[str]] = {}
    user_segment: dict[str, str] = {}
    if users is not None and "segment" in users:
        seg = users.dropna(subset=["segment"])
        user_segment = dict(zip(seg["user_id"].astype(str), seg["segment"].astype(str), strict=True))
        uidx = model.users_.index(np.asarray(list(user_segment), dtype=object), unknown="ignore")
        labels = np.asarray(list(user_segment.values()), dtype=object)
        binary = (model.train_matrix_ > 0).astype(np.float64)
        for s in sorted(set(labels)):
            rows = uidx[(labels == s) & (uidx >= 0)]
            if rows.size:
                counts = np.asarray(binary[rows].sum(axis=0)).ravel()
                order = np.argsort(-counts, kind="stable")
                segment_popular[s] = [str(item_ids[i]) for i in order[:200] if counts[i] > 0]

    new_arrivals: list[str] = []
    if catalog_frame is not None and "created_at" in catalog_frame:
        newest = catalog_frame.dropna(subset=["created_at"]).sort_values("created_at", ascending=False)
        new_arrivals = [str(i) for i in newest["item_id"].head(200)]
    cat = Catalog.from_frame(catalog_frame)
    if not curated:
        if catalog_frame is not None and "stock" in catalog_frame:
            curated = tuple(str(i) for i in catalog_frame.sort_values("stock", ascending=False)["item_id"].head(100))
        else:
            curated = tuple(popular[:100])
    label = version.label if version is not None else Path(model_dir).name
    sm = ServingModel(
        label=label, model=model, catalog=cat, popular=popular[:500], segment_popular=segment_popular,
        user_segment=user_segment, trending=trending, new_arrivals=new_arrivals,
        coview=coview_neighbors(model.train_matrix_, item_ids), curated=list(curated), version=version,
        known_users=frozenset(str(u) for u in model.users_.ids),
    )
    from aisle.serving._fast import build_fast_index

    object.__setattr__(sm, "fast", build_fast_index(sm))
    return sm


def describe(sm: ServingModel) -> str:
    """A one-line JSON summary (for logs)."""
    return json.dumps({"model": sm.label, "items": len(sm.model.items_), "catalog": len(sm.catalog.index)})

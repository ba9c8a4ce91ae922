"""Two-tower retrieval: a user tower and an item tower trained with a corrected in-batch softmax.

Architecture (``d`` = ``dim``; every tower ends in an L2 normalisation, so a score is a cosine):

* **Item tower.** The concatenation of an item-id embedding and, where the catalog passed to
  ``fit`` has them, embeddings of the item's ``category`` (every level of a ``/`` path and every
  ``|``-separated value, mean-pooled: ``"Women/Shoes"`` gives ``Women`` and ``Women/Shoes``),
  ``brand``, ``price`` bucket (``price_buckets`` quantiles of the catalog's prices) and,
  optionally, a projected text embedding of a catalog text column
  (:func:`aisle.models._content.encode_texts`, ``text="tfidf"|"minilm"``), through an MLP
  (``hidden`` units, ReLU) to ``d``.
* **User tower.** The user's ``max_history`` most recent distinct items (time order, from the
  training events or, for a user unseen in training, from the ``history`` events; only items the
  feedback rules weigh positively), embedded by a history table and pooled by their mean or by
  attention (a learned query over item + recency-position embeddings), optionally concatenated
  with a ``segment`` embedding (``user_features=True``; users unseen in training get the
  "unknown segment" slot), through an MLP to ``d``. Known and new users take this same path, so
  a new user folds in from their events without retraining, and a newcomer with a known user's
  history gets that user's list.

Training: each distinct item of a training user's sequence after the first is a target; its
history (``context``) is the items before it (``"previous"``, Covington et al. 2016's next-item
setting), the user's most recent items other than the target (``"all"``: the whole profile, what
the tower sees when it recommends), or either, drawn per batch (``"mixed"``, the default: the
first wins on MovieLens, the second on a simulated shop, the mix is close to both). A batch of ``B``
(history, target) pairs is scored all-pairs, ``s(u, v) = cos(u, v) / temperature``, and trained
with a softmax over the batch's targets (in-batch negatives; the same target twice in a batch
is masked as a negative). In-batch negatives are drawn in proportion to the items' frequency as
targets, so popular items are pushed down far more often than rare ones; with ``logq=True``
(default) every logit is corrected by ``- log(B · Q(item))`` (Yi et al., RecSys 2019;
:class:`~aisle.models._samplers.InBatchSampler` gives ``Q``), which removes that sampling bias:
the model then estimates the full softmax rather than a popularity-discounted one (without the
correction, popular items are under-scored). ``negatives="mixed"`` adds ``n_negatives`` items
drawn uniformly over the catalog to every batch (Yang et al., WWW 2020, mixed negative
sampling; :class:`~aisle.models._samplers.MixedSampler`), so rare and never-clicked items are also
seen as negatives; the correction then uses the expected count of each item among the
batch's negatives, ``B · Q_batch(i) + n_negatives / n_items``. Adam(W) with decoupled weight
decay; seeded; a rich progress bar with the running loss (``AISLE_PROGRESS=0`` hides it).

Cold items. During training the item-id embedding is replaced by a shared "cold" slot with
probability ``id_dropout``, so the tower also learns to place an item from its features alone.
Items with no training interaction always use that slot: with ``catalog_items=True`` the catalog
items unseen in training join the item vocabulary at ``fit`` and are ranked from their category,
brand, price (and text) embeddings. That is off by default because it changes the candidate set
(``aisle evaluate`` ranks the training items for every model, and its protocol says so).

Serving. ``recommend`` scores every item exactly (one matrix product and the top-k kernel) by
default; ``ann="hnsw"|"ivf"`` builds an :class:`~aisle.models._ann.ANNIndex` over the item
vectors at the end of ``fit`` (saved with the model as faiss bytes) and answers
``recommend`` from it, over-fetching ``k`` + the longest seen list in the batch so seen-item
filtering never shortens a list (rows that still come up short are scored exactly). With a
``candidates`` or ``exclude`` filter the exact path is used. Inference runs on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, FiniteFloat

from aisle.data._feedback import Interactions
from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError
from aisle.models._base import (
    CategoricalParam,
    FloatParam,
    ModelConfig,
    Recommendations,
    SearchSpace,
    UnknownUsers,
    factor_scores,
)
from aisle.models._samplers import InBatchSampler, MixedSampler
from aisle.models._sequential import Sequences, SequentialRecommender
from aisle.models._topk import top_k_excluding
from aisle.models._torch import (
    TrainingProgress,
    resolve_device,
    seeded,
    state_from_numpy,
    state_to_numpy,
    torch_module,
    torch_threads,
)

__all__ = ["TwoTower", "TwoTowerConfig", "category_tokens", "price_buckets", "softmax_logits"]

_MAX_CATEGORY_TOKENS = 16


class TwoTowerConfig(ModelConfig):
    """Config of :class:`TwoTower` (see the module docstring for the model).

    Attributes:
        dim: output embedding size of both towers (also the size of every input embedding).
        hidden: width of the hidden layer of both towers' MLPs; 0 makes each a single linear map.
        pooling: how the user's history embeddings are pooled: ``"attention"`` (a learned query
            over item + recency-position embeddings) or ``"mean"``.
        max_history: the most recent distinct items a user is represented by.
        context: the history a training target is predicted from: ``"previous"`` – the
            ``max_history`` items before it (next-item prediction, Covington et al.'s "next
            watch"); ``"all"`` – the user's ``max_history`` most recent items other than the
            target, later ones included (a held-out item of the whole profile, which is what the
            user tower sees when it recommends); ``"mixed"`` – either, drawn per batch.
        temperature: the softmax temperature of the cosine scores.

            The defaults (attention pooling, temperature 0.2, 10 epochs, ``context="mixed"``, the
            rest as listed) were chosen on the validation parts of the temporal splits
            (``make_split(ds, validation=True)``) of MovieLens-100K and of a simulated shop; see
            docs/models.md for the figures.
        logq: subtract ``log(expected count among the negatives)`` from each logit (Yi et al.
            2019); ``False`` trains the plain in-batch softmax (more popularity-biased).
        negatives: ``"in-batch"`` or ``"mixed"`` (in-batch plus ``n_negatives`` uniform draws).
        n_negatives: uniform negatives per batch with ``negatives="mixed"``.
        epochs: passes over the training (history, target) pairs.
        batch_size: pairs per batch (and in-batch negatives per pair).
        learning_rate: Adam step size.
        weight_decay: decoupled weight decay (AdamW) on every parameter.
        id_dropout: training probability of replacing an item's id embedding by the cold slot
            (teaches the feature path; also the segment's dropout to "unknown").
        features: use the catalog's category, brand and price when ``fit`` gets a catalog.
        price_buckets: quantile buckets of the price feature.
        text: embed a catalog text column with :func:`aisle.models._content.encode_texts`
            (``"tfidf"`` or ``"minilm"``); ``"none"`` (default) does not.
        text_column: the catalog column read when ``text`` is on.
        user_features: add a ``segment`` embedding from the ``users`` table to the user tower.
        catalog_items: catalog items with no training interaction join the item vocabulary
            and are ranked from their features (changes the candidate set; off by default).
        ann: ``"exact"`` dense scoring (default), or an ANN index ``"hnsw"`` / ``"ivf"`` for
            ``recommend`` (needs the ``ann`` extra).
        ann_hnsw_m: HNSW links per node.
        ann_ef_search: HNSW search list (raised to the fetch size).
        ann_nprobe: IVF cells scanned per query (``nlist`` is ``4 · sqrt(n_items)``).
        device: ``"auto"`` (a GPU when visible), ``"cpu"``, ``"cuda"``, ``"cuda:1"``... for training.
        seed: seed of the initialisation, the shuffles and the negatives.
        threads: torch intra-op threads while fitting and scoring; 0 keeps torch's setting. One
            by default: the towers' operations are small (a batch of 512 × 64), and torch's
            OpenMP threads spin against each other and other processes: 2 epochs on
            MovieLens-100K took 4-9 s with 1 thread and 29-43 s with 2 on a loaded 2-core machine.
    """

    dim: int = Field(default=64, gt=0, le=2048)
    hidden: int = Field(default=256, ge=0, le=8192)
    pooling: Literal["mean", "attention"] = "attention"
    max_history: int = Field(default=50, ge=1)
    context: Literal["previous", "all", "mixed"] = "mixed"
    temperature: FiniteFloat = Field(default=0.2, gt=0)
    logq: bool = True
    negatives: Literal["in-batch", "mixed"] = "in-batch"
    n_negatives: int = Field(default=256, ge=1)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=512, ge=2)
    learning_rate: FiniteFloat = Field(default=1e-3, gt=0)
    weight_decay: FiniteFloat = Field(default=0.0, ge=0)
    id_dropout: FiniteFloat = Field(default=0.1, ge=0, lt=1)
    features: bool = True
    price_buckets: int = Field(default=10, ge=2, le=1000)
    text: Literal["none", "tfidf", "minilm"] = "none"
    text_column: str = "text"
    user_features: bool = False
    catalog_items: bool = False
    ann: Literal["exact", "hnsw", "ivf"] = "exact"
    ann_hnsw_m: int = Field(default=32, ge=2)
    ann_ef_search: int = Field(default=128, ge=1)
    ann_nprobe: int = Field(default=32, ge=1)
    device: str = "auto"
    seed: int = Field(default=0, ge=0, lt=2**63)
    threads: int = Field(default=1, ge=0)


# ------------------------------------------------------------------------------------------
# features
# ------------------------------------------------------------------------------------------


def category_tokens(value: object) -> list[str]:
    """The tokens of a category: every ``|``-separated value and every level of its ``/`` path.

    >>> category_tokens("Women/Shoes|Sale")
    ['Women', 'Women/Shoes', 'Sale']
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return []
    out: list[str] = []
    for part in str(value).split("|"):
        levels = [p.strip() for p in part.split("/") if p.strip()]
        out.extend("/".join(levels[: i + 1]) for i in range(len(levels)))
    return list(dict.fromkeys(out))


def price_buckets(prices: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket codes ``1..n`` by the prices' quantiles (``0`` where the price is missing)."""
    p = np.asarray(prices, dtype=np.float64)
    ok = np.isfinite(p)
    codes = np.zeros(p.size, dtype=np.int64)
    if not ok.any():
        return codes
    edges = np.unique(np.quantile(p[ok], np.linspace(0, 1, n_buckets + 1)[1:-1]))
    codes[ok] = 1 + np.searchsorted(edges, p[ok], side="right")
    return codes


def _codes(values: pd.Series) -> np.ndarray:
    """Dense codes ``1..m`` of a string column (``0`` for missing)."""
    codes, _ = pd.factorize(values.astype("string"), use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64) + 1


class _ItemFeatures:
    """Per-item feature codes aligned with the item vocabulary (0 = missing)."""

    def __init__(self, n_items: int) -> None:
        self.category = np.zeros((n_items, 0), dtype=np.int64)
        self.brand = np.zeros(0, dtype=np.int64)
        self.price = np.zeros(0, dtype=np.int64)
        self.text = np.zeros((n_items, 0), dtype=np.float32)

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame | None, items: Vocabulary, config: TwoTowerConfig) -> _ItemFeatures:
        n = len(items)
        out = cls(n)
        if catalog is None or "item_id" not in catalog.columns:
            return out
        cat = catalog.drop_duplicates("item_id", keep="last")
        pos = items.index(cat["item_id"].astype(str).to_numpy(dtype=object), unknown="ignore")
        cat, pos = cat[pos >= 0], pos[pos >= 0]
        if config.features and "category" in cat.columns and cat["category"].notna().any():
            toks = [category_tokens(v)[:_MAX_CATEGORY_TOKENS] for v in cat["category"].to_numpy(dtype=object)]
            vocab: dict[str, int] = {}
            width = max((len(t) for t in toks), default=0)
            mat = np.zeros((n, width), dtype=np.int64)
            for row, t in zip(pos, toks, strict=True):
                mat[row, : len(t)] = [vocab.setdefault(x, len(vocab) + 1) for x in t]
            out.category = mat
        if config.features and "brand" in cat.columns and cat["brand"].notna().any():
            out.brand = np.zeros(n, dtype=np.int64)
            out.brand[pos] = _codes(cat["brand"])
        if config.features and "price" in cat.columns and cat["price"].notna().any():
            out.price = np.zeros(n, dtype=np.int64)
            out.price[pos] = price_buckets(pd.to_numeric(cat["price"], errors="coerce").to_numpy(), config.price_buckets)
        if config.text != "none":
            if config.text_column not in cat.columns:
                raise ConfigError(f"two-tower text={config.text!r} reads the catalog column "
                                  f"{config.text_column!r}, which the catalog lacks")
            try:
                from aisle.models._content import encode_texts  # type: ignore[import-not-found,unused-ignore]
            except ImportError as exc:
                raise ConfigError("two-tower text embeddings need aisle.models._content.encode_texts, "
                                  "which this installation lacks; use text='none'") from exc
            texts = np.full(n, "", dtype=object)
            texts[pos] = cat[config.text_column].fillna("").astype(str).to_numpy(dtype=object)
            emb = np.asarray(encode_texts(list(texts), method=config.text), dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != n:
                raise ConfigError(f"encode_texts returned shape {emb.shape}, expected ({n}, dim)")
            emb[np.array([not t for t in texts])] = 0.0  # no text: no text signal
            out.text = emb
        return out


# ------------------------------------------------------------------------------------------
# the network (torch is imported lazily; these classes are built on first use)
# ------------------------------------------------------------------------------------------

_NET: Any = None


def _net_class() -> Any:
    """The ``nn.Module`` of the two towers (defined once torch is imported)."""
    global _NET
    if _NET is not None:
        return _NET
    torch = torch_module()
    nn = torch.nn
    F = torch.nn.functional

    def mlp(n_in: int, hidden: int, n_out: int) -> Any:
        if hidden == 0:
            return nn.Linear(n_in, n_out)
        return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    class TwoTowerNet(nn.Module):  # type: ignore[misc,name-defined]
        """Both towers. Item inputs are item indices; history inputs are item index + 1 (0 = pad)."""

        def __init__(self, sizes: dict[str, int], feats: _ItemFeatures | None, id_code: np.ndarray | None) -> None:
            super().__init__()
            d, hidden = sizes["dim"], sizes["hidden"]
            n_items = sizes["n_items"]
            std = 1.0 / np.sqrt(d)
            # lookups, saved with the weights: 0 = cold slot / missing feature
            self.register_buffer("id_code", torch.zeros((2, n_items), dtype=torch.long))  # item, history
            self.register_buffer("cat_code", torch.zeros((n_items, sizes["cat_width"]), dtype=torch.long))
            self.register_buffer("brand_code", torch.zeros(n_items if sizes["n_brands"] else 0, dtype=torch.long))
            self.register_buffer("price_code", torch.zeros(n_items if sizes["n_prices"] else 0, dtype=torch.long))
            self.register_buffer("text_emb", torch.zeros((n_items, sizes["text_dim"]), dtype=torch.float32))
            if feats is not None and id_code is not None:
                self.id_code.copy_(torch.from_numpy(id_code))
                self.cat_code.copy_(torch.from_numpy(feats.category))
                if sizes["n_brands"]:
                    self.brand_code.copy_(torch.from_numpy(feats.brand))
                if sizes["n_prices"]:
                    self.price_code.copy_(torch.from_numpy(feats.price))
                self.text_emb.copy_(torch.from_numpy(feats.text))
            parts = 1
            self.item_id = nn.Embedding(n_items + 1, d)
            nn.init.normal_(self.item_id.weight, std=std)
            self.category: Any = None
            self.brand: Any = None
            self.price: Any = None
            self.text: Any = None
            if sizes["n_cat_tokens"]:
                self.category = nn.EmbeddingBag(sizes["n_cat_tokens"] + 1, d, mode="mean", padding_idx=0)
                nn.init.normal_(self.category.weight, std=std)
                parts += 1
            if sizes["n_brands"]:
                self.brand = nn.Embedding(sizes["n_brands"] + 1, d)
                nn.init.normal_(self.brand.weight, std=std)
                parts += 1
            if sizes["n_prices"]:
                self.price = nn.Embedding(sizes["n_prices"] + 1, d)
                nn.init.normal_(self.price.weight, std=std)
                parts += 1
            if sizes["text_dim"]:
                self.text = nn.Linear(sizes["text_dim"], d)
                parts += 1
            self.item_mlp = mlp(parts * d, hidden, d)
            # user tower
            self.history = nn.Embedding(n_items + 1, d, padding_idx=0)
            nn.init.normal_(self.history.weight, std=std)
            with torch.no_grad():
                self.history.weight[0].zero_()
            self.attention = bool(sizes["attention"])
            if self.attention:
                self.position = nn.Embedding(sizes["max_history"], d)
                nn.init.normal_(self.position.weight, std=std)
                self.query = nn.Parameter(torch.zeros(d))
            self.segment: Any = None
            user_parts = 1
            if sizes["n_segments"]:
                self.segment = nn.Embedding(sizes["n_segments"] + 1, d)
                nn.init.normal_(self.segment.weight, std=std)
                user_parts += 1
            self.user_mlp = mlp(user_parts * d, hidden, d)

        def items(self, idx: Any, drop_id: Any = None) -> Any:
            """Normalised item vectors of item indices (``drop_id``: use the cold slot there)."""
            code = self.id_code[0, idx]
            if drop_id is not None:
                code = torch.where(drop_id, torch.zeros_like(code), code)
            parts = [self.item_id(code)]
            if self.category is not None:
                parts.append(self.category(self.cat_code[idx]))
            if self.brand is not None:
                parts.append(self.brand(self.brand_code[idx]))
            if self.price is not None:
                parts.append(self.price(self.price_code[idx]))
            if self.text is not None:
                parts.append(self.text(self.text_emb[idx]))
            return F.normalize(self.item_mlp(torch.cat(parts, dim=1)), dim=1)

        def users(self, hist: Any, segment: Any = None) -> Any:
            """Normalised user vectors of right-aligned history codes ``(B, H)`` (0 = padding)."""
            emb = self.history(hist)
            mask = (hist > 0).to(emb.dtype)
            if self.attention:
                h = hist.shape[1]
                pos = self.position.weight[-h:]  # the most recent item takes the last position
                logits = (emb + pos) @ self.query / np.sqrt(emb.shape[-1])
                logits = logits.masked_fill(hist == 0, float("-inf"))
                w = torch.nan_to_num(torch.softmax(logits, dim=1), nan=0.0)
            else:
                w = mask / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
            pooled = (w.unsqueeze(-1) * emb).sum(dim=1)
            parts = [pooled]
            if self.segment is not None:
                parts.append(self.segment(segment))
            return F.normalize(self.user_mlp(torch.cat(parts, dim=1)), dim=1)

    _NET = TwoTowerNet
    return _NET


def softmax_logits(
    u: Any, v: Any, targets: Any, temperature: float, log_q: Any | None = None,
    negatives: Any | None = None, v_neg: Any | None = None, n_items: int = 0,
) -> Any:
    """The training logits of a batch: row ``i`` scores its own target (column ``i``) against
    the batch's other targets and, when given, the shared uniform ``negatives``.

    ``logits[i, j] = u_i · v_j / temperature - log E[count of target_j among the negatives]``:
    ``log(B · Q(t_j))`` for in-batch negatives (``log_q`` = ``log Q`` per item, the in-batch
    sampling distribution), ``log(B · Q(t_j) + n_neg / n_items)`` with uniform negatives mixed in;
    no correction when ``log_q`` is ``None``. Another row holding the same target as row ``i``
    (an accidental hit), and a uniform negative equal to row ``i``'s target, are masked (``-inf``).
    """
    torch = torch_module()
    b = u.shape[0]
    logits = u @ v.T / temperature
    dup = (targets[:, None] == targets[None, :]) & ~torch.eye(b, dtype=torch.bool, device=u.device)
    if negatives is None:
        if log_q is not None:
            logits = logits - (log_q[targets] + float(np.log(b)))[None, :]
        return logits.masked_fill(dup, float("-inf"))
    assert v_neg is not None
    logits_n = (u @ v_neg.T / temperature).masked_fill(targets[:, None] == negatives[None, :], float("-inf"))
    if log_q is not None:
        correction = torch.log(b * torch.exp(log_q) + negatives.shape[0] / n_items)
        logits = logits - correction[targets][None, :]
        logits_n = logits_n - correction[negatives][None, :]
    return torch.cat([logits.masked_fill(dup, float("-inf")), logits_n], dim=1)


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------


def _distinct(seq: np.ndarray, keep: Literal["first", "last"]) -> np.ndarray:
    """``seq`` without repeats, each item at its first (or last) occurrence, order kept."""
    if seq.size < 2:
        return seq
    if keep == "first":
        _, first = np.unique(seq, return_index=True)
        return seq[np.sort(first)]
    _, last_rev = np.unique(seq[::-1], return_index=True)
    return seq[np.sort(seq.size - 1 - last_rev)]


class TwoTower(SequentialRecommender):
    """Two-tower retrieval model (see the module docstring).

    Example:
        >>> model = TwoTower(dim=32, epochs=5)  # doctest: +SKIP
        >>> model.fit(interactions, catalog=catalog, events=events).recommend(["u1"], k=10)  # doctest: +SKIP
    """

    name: ClassVar[str] = "two-tower"
    Config: ClassVar[type[ModelConfig]] = TwoTowerConfig
    search_space: ClassVar[SearchSpace] = {
        "dim": CategoricalParam((32, 64, 128)),
        "temperature": FloatParam(0.02, 0.3, log=True),
        "learning_rate": FloatParam(1e-4, 1e-2, log=True),
        "weight_decay": FloatParam(1e-8, 1e-2, log=True),
    }
    config: TwoTowerConfig

    # ------------------------------------------------------------------ learning
    def fit(
        self,
        interactions: Interactions,
        *,
        catalog: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
    ) -> Self:
        """Learn from an interaction matrix, its events (order) and the catalog (features).

        With ``catalog_items=True`` the catalog's items unseen in training are appended to the
        item vocabulary (as empty columns) first, so they can be recommended from their features.
        """
        if self.config.catalog_items and catalog is not None and "item_id" in catalog.columns:
            extended = interactions.items.extend(catalog["item_id"].dropna().astype(str).to_numpy(dtype=object))
            if len(extended) > len(interactions.items):
                m = sp.csr_array(interactions.matrix)
                m.resize((m.shape[0], len(extended)))
                interactions = Interactions(m, interactions.users, extended, interactions.config,
                                            interactions.reference_time)
        return super().fit(interactions, catalog=catalog, users=users, events=events)

    def _positive_sequences(self, seqs: Sequence[np.ndarray], rows: sp.csr_matrix) -> list[np.ndarray]:
        """Each sequence restricted to the items its row weighs positively (ratings under the
        threshold, cancelled purchases ... drop out), in time order."""
        out = []
        for j, s in enumerate(seqs):
            lo, hi = rows.indptr[j], rows.indptr[j + 1]
            pos = rows.indices[lo:hi][rows.data[lo:hi] > 0]
            out.append(s[np.isin(s, pos)] if s.size else s)
        return out

    def _fit_sequences(self, sequences: Sequences, matrix: sp.csr_matrix) -> None:
        cfg = self.config
        torch = torch_module()
        device = resolve_device(cfg.device)
        n_items = len(self.items_)
        seqs = [_distinct(s, "first") for s in self._positive_sequences(sequences.to_list(), matrix)]
        # training pairs: (user, position) for every position after the first
        lengths = np.asarray([s.size for s in seqs], dtype=np.int64)
        flat = Sequences.from_list(seqs)
        starts = flat.indptr[:-1]
        n_pairs_per = np.maximum(lengths - 1, 0)
        pair_user = np.repeat(np.arange(len(seqs)), n_pairs_per)
        pair_pos = (np.arange(int(n_pairs_per.sum())) - np.repeat(np.cumsum(n_pairs_per) - n_pairs_per, n_pairs_per)
                    + 1 + np.repeat(starts, n_pairs_per))  # absolute position of each target in flat.items
        targets = flat.items[pair_pos]
        counts = np.bincount(targets, minlength=n_items).astype(np.float64)
        # id slots only for what training touches: targets (item tower), earlier items (history);
        # the rest use slot 0 (cold item tower slot, history padding)
        if cfg.context == "previous":  # a user's last item is never in a training history
            context_items = np.delete(flat.items, flat.indptr[1:][lengths > 0] - 1)
        else:  # every item of a user with a training pair
            context_items = flat.items[np.repeat(lengths >= 2, lengths)]
        in_history = np.bincount(context_items, minlength=n_items) > 0
        codes = np.arange(1, n_items + 1, dtype=np.int64)
        id_code = np.stack([np.where(counts > 0, codes, 0), np.where(in_history, codes, 0)])
        feats = _ItemFeatures.from_catalog(self.side_.catalog, self.items_, cfg)
        seg_codes = self._segments(self.side_.users) if cfg.user_features else None
        sizes = {
            "dim": cfg.dim, "hidden": cfg.hidden, "n_items": n_items, "max_history": cfg.max_history,
            "attention": int(cfg.pooling == "attention"),
            "cat_width": feats.category.shape[1], "n_cat_tokens": int(feats.category.max(initial=0)),
            "n_brands": int(feats.brand.max(initial=0)), "n_prices": int(feats.price.max(initial=0)),
            "text_dim": feats.text.shape[1], "n_segments": int(seg_codes.max(initial=0)) if seg_codes is not None else 0,
        }
        self.sizes_ = sizes
        self.user_segment_ = seg_codes if seg_codes is not None else np.zeros(0, dtype=np.int64)
        self.id_code_ = id_code
        sampler = MixedSampler(counts) if cfg.negatives == "mixed" else InBatchSampler(counts)
        q_batch = (sampler.in_batch if isinstance(sampler, MixedSampler) else sampler).probabilities()
        uniform = sampler.uniform if isinstance(sampler, MixedSampler) else None
        rng = np.random.default_rng(cfg.seed)
        with seeded(cfg.seed, cfg.threads or None):
            net = _net_class()(sizes, feats, id_code).to(device)
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            n_pairs = targets.size
            steps = max(1, -(-n_pairs // cfg.batch_size))
            hist_items = torch.as_tensor(id_code[1][flat.items], device=device)
            user_start = torch.as_tensor(starts, device=device)
            seg_t = torch.as_tensor(self.user_segment_, device=device) if seg_codes is not None else None
            log_q = torch.as_tensor(np.log(np.maximum(q_batch, 1e-30)), dtype=torch.float32, device=device)
            user_end = torch.as_tensor(flat.indptr[1:], device=device)
            offsets = torch.arange(-cfg.max_history, 0, device=device)
            around = torch.arange(-cfg.max_history - 1, 0, device=device)
            self.training_history_: list[dict[str, float]] = []
            with TrainingProgress(self.name, cfg.epochs, steps if n_pairs else 0) as bar:
                for _ in range(cfg.epochs):
                    order = rng.permutation(n_pairs)
                    net.train()
                    for b in range(0, n_pairs, cfg.batch_size):
                        sel = order[b:b + cfg.batch_size]
                        if sel.size < 2:
                            continue
                        pos = torch.as_tensor(pair_pos[sel], device=device)
                        usr = torch.as_tensor(pair_user[sel], device=device)
                        tgt = torch.as_tensor(targets[sel], device=device)
                        # the window of history positions before each target, right-aligned
                        ctx = cfg.context if cfg.context != "mixed" else ("previous", "all")[int(rng.integers(2))]
                        if ctx == "previous":
                            win = pos[:, None] + offsets[None, :]
                            valid = win >= user_start[usr][:, None]
                        else:  # the user's last max_history + 1 items minus the target (or the oldest)
                            win = user_end[usr][:, None] + around[None, :]
                            valid = (win >= user_start[usr][:, None]) & (win != pos[:, None])
                            valid[:, 0] &= (win == pos[:, None]).any(dim=1)
                        hist = torch.where(valid, hist_items[win.clamp(min=0)], torch.zeros_like(win))
                        if ctx == "all":  # right-align: drop the one empty slot
                            align = torch.argsort(valid.to(torch.int8), dim=1, stable=True)
                            hist = torch.gather(hist, 1, align)[:, 1:]
                        seg = None
                        drop = None
                        if cfg.id_dropout > 0:
                            drop = torch.as_tensor(rng.random(sel.size) < cfg.id_dropout, device=device)
                        if seg_t is not None:
                            seg = seg_t[usr]
                            if drop is not None:
                                seg = torch.where(torch.as_tensor(rng.random(sel.size) < cfg.id_dropout,
                                                                  device=device), torch.zeros_like(seg), seg)
                        u = net.users(hist, seg)
                        v = net.items(tgt, drop)
                        neg = vn = None
                        if uniform is not None:
                            neg = torch.as_tensor(uniform.sample(np.zeros(1), cfg.n_negatives, rng)[0], device=device)
                            vn = net.items(neg)
                        logits = softmax_logits(u, v, tgt, cfg.temperature, log_q if cfg.logq else None,
                                                neg, vn, n_items)
                        loss = torch.nn.functional.cross_entropy(logits, torch.arange(sel.size, device=device))
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        bar.step(loss=float(loss.detach()))
                    bar.end_epoch()
                self.training_history_ = bar.history
        self.net_ = net.to("cpu").eval()
        self._refresh_item_vectors()

    def _segments(self, users: pd.DataFrame | None) -> np.ndarray:
        """Segment codes (1..m, 0 unknown) of the training users."""
        codes = np.zeros(len(self.users_), dtype=np.int64)
        if users is None or "segment" not in users.columns or "user_id" not in users.columns:
            return codes
        frame = users.drop_duplicates("user_id", keep="last")
        pos = self.users_.index(frame["user_id"].astype(str).to_numpy(dtype=object), unknown="ignore")
        codes[pos[pos >= 0]] = _codes(frame["segment"])[pos >= 0]
        return codes

    def _refresh_item_vectors(self) -> None:
        torch = torch_module()
        with torch.no_grad(), torch_threads(self.config.threads):
            n = len(self.items_)
            out = [self.net_.items(torch.arange(a, min(a + 65536, n))).numpy() for a in range(0, n, 65536)]
        self.item_vectors_: np.ndarray = np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
        self.ann_: Any = None
        if self.config.ann != "exact":
            self._build_ann()

    def _build_ann(self) -> None:
        from aisle.models._ann import ANNIndex

        cfg = self.config
        self.ann_ = ANNIndex(cfg.ann, metric="cosine", hnsw_m=cfg.ann_hnsw_m, ef_search=cfg.ann_ef_search,
                             nprobe=cfg.ann_nprobe, seed=cfg.seed).build(self.item_vectors_)

    # ------------------------------------------------------------------ scoring
    def _user_vectors(self, sequences: Sequence[np.ndarray], user_index: np.ndarray) -> np.ndarray:
        """Normalised user vectors from ordered, positively weighted item sequences."""
        torch = torch_module()
        h = self.config.max_history
        hist = np.zeros((len(sequences), h), dtype=np.int64)
        for j, s in enumerate(sequences):
            recent = _distinct(np.asarray(s, dtype=np.int64), "last")[-h:]
            if recent.size:
                hist[j, h - recent.size:] = self.id_code_[1, recent]
        seg = None
        if self.sizes_["n_segments"]:
            idx = np.asarray(user_index)
            seg = torch.as_tensor(np.where(idx >= 0, self.user_segment_[np.maximum(idx, 0)], 0))
        with torch.no_grad(), torch_threads(self.config.threads):
            out: np.ndarray = self.net_.users(torch.as_tensor(hist), seg).numpy()
        return out

    def _sequence_scores(
        self, rows: sp.csr_matrix, user_index: np.ndarray, sequences: list[np.ndarray] | None
    ) -> np.ndarray:
        if sequences is None:  # pragma: no cover - the base always passes sequences to this model
            sequences = [self.sequences_[int(i)] if i >= 0 else rows.indices[rows.indptr[j]:rows.indptr[j + 1]]
                         for j, i in enumerate(user_index)]
        users = self._user_vectors(self._positive_sequences(sequences, sp.csr_matrix(rows)), user_index)
        return factor_scores(users, self.item_vectors_)

    def _score_sequences(self, sequences: list[np.ndarray]) -> np.ndarray:
        return factor_scores(self._user_vectors(sequences, np.full(len(sequences), -1)), self.item_vectors_)

    def _item_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def user_embeddings(self, users: Sequence[str], *, history: pd.DataFrame | None = None) -> np.ndarray:
        """The user tower's output for ``users`` (unknown users folded in from ``history``)."""
        self._check_fitted()
        user_list = [str(u) for u in users]
        rows, idx, _ = self._history_rows(user_list, history, "raise")
        seqs = self._history_sequences(user_list, idx, history) or []
        return self._user_vectors(self._positive_sequences(seqs, rows), idx)

    def item_embeddings(self) -> np.ndarray:
        """The item tower's output, one row per item of the vocabulary (``items_``)."""
        self._check_fitted()
        return self.item_vectors_

    # ------------------------------------------------------------------ ANN serving
    def _recommend_batches(
        self, user_list: list[str], k: int, kk: int, allowed: np.ndarray, exclude_seen: bool,
        history: pd.DataFrame | sp.spmatrix | None, unknown_users: UnknownUsers, batch_size: int,
        out_items: np.ndarray, out_scores: np.ndarray, out_sources: np.ndarray,
    ) -> Recommendations:
        if self.config.ann == "exact" or not allowed.all():
            return super()._recommend_batches(user_list, k, kk, allowed, exclude_seen, history, unknown_users,
                                              batch_size, out_items, out_scores, out_sources)
        if self.ann_ is None:
            self._build_ann()
        item_ids = self.items_.ids
        for start in range(0, len(user_list), batch_size):
            batch = user_list[start:start + batch_size]
            hist = sp.csr_matrix(history)[start:start + len(batch)] if sp.issparse(history) else history
            rows, idx, source = self._history_rows(batch, hist, unknown_users)
            rows = sp.csr_matrix(rows)
            top = np.full((len(batch), kk), -1, dtype=np.int64)
            vals = np.full((len(batch), kk), -np.inf)
            known = np.flatnonzero(source != "")
            if known.size:
                seqs = self._history_sequences(batch, idx, hist) or []
                sub_rows = sp.csr_matrix(rows[known])
                sub_seqs = self._positive_sequences([seqs[int(i)] for i in known], sub_rows)
                vecs = self._user_vectors(sub_seqs, idx[known])
                excl = sub_rows if exclude_seen else sp.csr_matrix(sub_rows.shape, dtype=np.float32)
                top[known], vals[known] = self._ann_top(vecs, kk, excl)
            rest = np.flatnonzero(source == "")
            if rest.size and unknown_users == "popular":
                pop = np.tile(self.item_popularity_, (rest.size, 1))
                t, v = top_k_excluding(pop, kk, np.zeros(rest.size + 1, np.int64), np.zeros(0, np.int64))
                top[rest], vals[rest] = t, v
                source[rest] = "popular"
            elif rest.size:
                source[rest] = "empty"
            valid = np.isfinite(vals) & (top >= 0)
            block: np.ndarray = np.where(valid, item_ids[np.maximum(top, 0)], None)  # type: ignore[call-overload]
            out_items[start:start + len(batch), :kk] = block
            out_scores[start:start + len(batch), :kk] = np.where(valid, vals, -np.inf)
            out_sources[start:start + len(batch)] = source
        return Recommendations(np.asarray(user_list, dtype=object), out_items, out_scores, out_sources)

    def _ann_top(self, vecs: np.ndarray, k: int, seen: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Top-k from the ANN index minus each row's seen items (over-fetched; short rows exact)."""
        n_items = len(self.items_)
        n_seen = np.diff(seen.indptr)
        fetch = min(n_items, k + int(n_seen.max(initial=0)))
        ids, scores = self.ann_.search(vecs, fetch)
        flat_rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
        hit = np.asarray(seen[flat_rows, np.maximum(ids, 0).ravel()]).ravel().reshape(ids.shape) != 0
        keep = (ids >= 0) & ~hit
        # stable compaction of the kept entries to the front of each row (the index sorts by score)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(ids, order, axis=1)
        vals = np.take_along_axis(np.where(keep, scores, -np.inf), order, axis=1)
        top = np.where(np.isfinite(vals), top, -1)
        short = np.flatnonzero(np.isfinite(vals).sum(axis=1) < np.minimum(k, n_items - n_seen))
        if short.size:  # the index returned too few unseen items for these rows: score them exactly
            sub = sp.csr_matrix(seen[short])
            t, v = top_k_excluding(factor_scores(vecs[short], self.item_vectors_), k, sub.indptr, sub.indices)
            top[short], vals[short] = t, v
        return top, vals

    # ------------------------------------------------------------------ persistence
    def _model_state(self) -> dict[str, np.ndarray]:
        sizes = np.asarray([self.sizes_[k] for k in _SIZE_KEYS], dtype=np.int64)
        state = {"_tt_sizes": sizes, "_tt_segments": self.user_segment_, "_tt_items": self.item_vectors_,
                 **state_to_numpy(self.net_)}
        if self.ann_ is not None:
            state.update(self.ann_.to_arrays(prefix="_tt_ann."))
        return state

    def _set_model_state(self, state: dict[str, np.ndarray]) -> None:
        self.sizes_ = {k: int(v) for k, v in zip(_SIZE_KEYS, state.pop("_tt_sizes"), strict=True)}
        self.user_segment_ = state.pop("_tt_segments")
        net = _net_class()(self.sizes_, None, None)
        state_from_numpy(net, state)
        self.net_ = net.eval()
        self.id_code_ = net.id_code.numpy().copy()
        self.item_vectors_ = np.ascontiguousarray(state.pop("_tt_items"), dtype=np.float32)
        self.ann_ = None
        ann = {k: state.pop(k) for k in [k for k in state if k.startswith("_tt_ann.")]}
        if ann:
            from aisle.models._ann import ANNIndex

            self.ann_ = ANNIndex.from_arrays(ann, prefix="_tt_ann.")


_SIZE_KEYS = ("dim", "hidden", "n_items", "max_history", "attention", "cat_width", "n_cat_tokens",
              "n_brands", "n_prices", "text_dim", "n_segments")

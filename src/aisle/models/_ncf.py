"""Neural collaborative filtering (NeuMF) and a dot-product MF trained the same way.

:class:`NeuMF` (``ncf``) is the model of He et al., "Neural Collaborative Filtering" (WWW 2017):
a GMF tower (``p_u ⊙ q_i``), an MLP tower over ``[p'_u, q'_i]`` with its own embeddings
(three layers: ``4f`` dimensions per side, ``8f → 4f → 2f → f``; for ``f = 8`` the
``[64, 32, 16, 8]`` of the paper's reference code) and a fused output layer
``x_ui = hᵀ[GMF; MLP] + b``.
``mode="gmf"`` or ``"mlp"`` keeps one tower. It is trained pointwise: binary cross-entropy on
each positive and ``n_negatives`` sampled negatives, with Adam. ``pretrain_epochs > 0`` first
trains GMF and MLP alone and starts NeuMF from them (output layer ``[α h_GMF; (1-α) h_MLP]``).

:class:`MF` (``mf``) is ``x_ui = p_u · q_i + b_i`` trained with the same samplers, optimiser
and loss (``loss="bce"``): the "well-tuned MF" with which Rendle, Krichene, Zhang & Anderson
("Neural Collaborative Filtering vs. Matrix Factorization Revisited", RecSys 2020) matched or
beat NeuMF. It also offers ``loss="bpr"`` (pairwise) and ``loss="softmax"`` (sampled softmax
with the logQ correction of Yi et al., RecSys 2019), which is the only loss for in-batch and
mixed negatives (Yang et al., WWW 2020).

Negatives come from :mod:`aisle.models._samplers` (``sampler="uniform" | "popularity" |
"hard"``, and for MF also ``"in-batch" | "mixed"``); a sampled negative is never one of the
user's positives for the per-row samplers (redrawn; in-batch negatives only skip the row's own
item). ``negative_popularity_`` records the mean training count of the
negatives actually used in each epoch, so what a sampler did to popular items is measured.

Regularisation is per example: each positive adds ``λ (‖p_u‖² + ‖q_i‖² + Σ_j ‖q_j‖²)``
(all embedding tables of the model; the MLP weights are not penalised).

**Users are represented from their history alone (fold-in).** Neither model has a natural
fold-in, so both solve one: after training, with every item-side parameter frozen, a user's
embeddings minimise the user's *expected* training loss, the expectation over the negative
sampler written out over the catalog instead of sampled (no sampling noise, so the result
depends on the history only; ``fold_in_items`` replaces the catalog by that many
importance-weighted items, the same for every user: NeuMF's default, see its config). For BCE
that is ``mean_i softplus(-x_ui) + Σ_j W_j softplus(x_uj) + λ‖p_u‖²``, where ``W_j`` is the
expected number of times item ``j`` is one of a positive's negatives (``n · Q(j)`` over the
user's non-positives, renormalised); for BPR ``mean_i Σ_j W_j softplus(x_uj - x_ui)``; for the
sampled softmax the expected-denominator form ``-(x_ui - c_i) + log(e^{x_ui - c_i} +
Σ_j W_j e^{x_uj - c_j})`` with ``c = log Q`` under the logQ correction (so it becomes the full
softmax). Hard negatives weigh ``j`` by the probability that it is drawn into the pool and
ranks among the top ``n`` of it under the current scores. The solve is ``fold_in_steps`` Adam
steps (step size decayed linearly to 0) from the mean of the jointly learned user embeddings.
**Every training user is re-derived by the same solve at the end of ``fit``** (as iALS solves its
last user half-step exactly), so a new user with a known user's history gets exactly that
user's recommendations. The cost of a fold-in is ``fold_in_steps`` forward and backward passes
over the whole catalog for each user (for BPR, times the user's number of positives), done in
row chunks of bounded memory.

Scoring a batch of users against every item: MF is one matrix product; NeuMF computes the GMF
part as a product ``(p_u ⊙ h) Qᵀ`` and splits the MLP's first layer into a user half and an item
half (``W [p; q] = W_u p + W_i q``), so only the later, narrower layers run on user × item pairs,
in item chunks of bounded memory.

PyTorch is the ``torch`` extra; ``device="auto"`` uses a GPU when one is visible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from aisle.models._base import (
    CategoricalParam,
    FloatParam,
    IntParam,
    ModelConfig,
    Recommender,
    SearchSpace,
)
from aisle.models._samplers import MixedSampler, NegativeSampler, sampler_by_name
from aisle.models._torch import (
    TrainingProgress,
    resolve_device,
    seeded,
    state_from_numpy,
    state_to_numpy,
    torch_module,
    torch_threads,
)

__all__ = ["MF", "MFConfig", "NeuMF", "NeuMFConfig"]

#: Elements of the largest intermediate tensor a scoring or fold-in chunk may hold.
_CHUNK_ELEMENTS = 2**24


class _TrainingConfig(ModelConfig):
    """Options shared by :class:`MFConfig` and :class:`NeuMFConfig` (see their docstrings)."""

    factors: int = Field(default=32, gt=0)
    n_negatives: int = Field(default=4, ge=1)
    sampler_alpha: float = Field(default=0.75, ge=0)
    hard_pool: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=0.005, gt=0)
    regularization: float = Field(default=1e-5, ge=0)
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=1024, ge=2)
    init_std: float = Field(default=0.01, gt=0)
    fold_in_steps: int = Field(default=50, ge=1)
    fold_in_lr: float = Field(default=0.05, gt=0)
    fold_in_items: int = Field(default=0, ge=0)
    device: str = "auto"
    seed: int = Field(default=0, ge=0, lt=2**63)
    threads: int = Field(default=0, ge=0)


class MFConfig(_TrainingConfig):
    """Config of :class:`MF`.

    Attributes:
        factors: embedding dimension.
        loss: ``"bce"`` (pointwise, as NCF), ``"bpr"`` (pairwise, each positive against each of
            its negatives) or ``"softmax"`` (sampled softmax over the positive and its
            negatives, or the batch's other positives for ``in-batch``/``mixed``).
        sampler: ``"uniform"``, ``"popularity"`` (``Q ∝ (count + 1)^sampler_alpha``),
            ``"hard"`` (the ``n_negatives`` best-scored of a ``hard_pool`` drawn by popularity
            ^ ``sampler_alpha``), ``"in-batch"`` or ``"mixed"`` (in-batch plus ``n_negatives``
            uniform items shared by the batch; both need ``loss="softmax"``).
        sampler_alpha: popularity exponent of the popularity and hard samplers.
        hard_pool: pool size of the hard sampler.
        n_negatives: negatives per positive (the uniform part for ``mixed``; unused by
            ``in-batch``).
        logq_correction: subtract ``log Q(item)`` from each softmax logit (softmax only).
        learning_rate: Adam step size.
        regularization: per-example L2 weight ``λ`` on the embeddings and item biases.
        epochs: passes over the positives.
        batch_size: positives per step (also the in-batch softmax's width).
        init_std: standard deviation of the initial embeddings.
        fold_in_steps: Adam steps of the fold-in solve (module docstring).
        fold_in_lr: initial step size of the fold-in solve.
        fold_in_items: items the fold-in's negative term is summed over: 0 for the whole
            catalog (exact), else that many importance-weighted draws shared by every user
            (unbiased, cheaper for big catalogs).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seed of the initialisation and of every sampling stream.
        threads: torch intra-op threads while fitting and scoring (0: torch's default). On a
            machine shared with other jobs, 1 can be many times faster than more: torch's
            worker threads wait for each other on every small operation.
    """

    factors: int = Field(default=64, gt=0)
    loss: Literal["bce", "bpr", "softmax"] = "bce"
    sampler: Literal["uniform", "popularity", "in-batch", "hard", "mixed"] = "uniform"
    logq_correction: bool = True
    init_std: float = Field(default=0.1, gt=0)

    @model_validator(mode="after")
    def _batch_samplers_need_softmax(self) -> Self:
        if self.sampler in ("in-batch", "mixed") and self.loss != "softmax":
            raise ValueError(f"sampler={self.sampler!r} needs loss='softmax' (got loss={self.loss!r})")
        return self


class NeuMFConfig(_TrainingConfig):
    """Config of :class:`NeuMF`.

    Attributes:
        mode: ``"neumf"`` (both towers, fused), ``"gmf"`` or ``"mlp"`` (one tower).
        factors: predictive factors: the GMF dimension and the MLP's last layer (``f``).
        mlp_layers: MLP depth ``L``; embeddings are ``f·2^(L-1)`` per side and the layers
            halve from ``f·2^L`` down to ``f`` (``L=3``, ``f=8``: 64 → 32 → 16 → 8).
        sampler: ``"uniform"``, ``"popularity"`` or ``"hard"`` (see :class:`MFConfig`).
        pretrain_epochs: for ``mode="neumf"``: train GMF and MLP alone this many epochs each and
            start NeuMF from them (0: no pretraining).
        pretrain_alpha: weight of the GMF tower in the pretrained output layer.
        fold_in_steps: as in :class:`MFConfig` (30 here: each step runs the MLP over
            user × item pairs).
        fold_in_items: as in :class:`MFConfig`; 512 by default, since the whole catalog costs
            NeuMF an MLP pass per user and item per step (on MovieLens-100K, 1,679 items, the
            full catalog gave the same NDCG@10 at twice the fold-in time).
        (the other fields are those of :class:`MFConfig`; the loss is BCE.)
    """

    mode: Literal["neumf", "gmf", "mlp"] = "neumf"
    factors: int = Field(default=16, gt=0)
    mlp_layers: int = Field(default=3, ge=1, le=6)
    sampler: Literal["uniform", "popularity", "hard"] = "uniform"
    pretrain_epochs: int = Field(default=0, ge=0)
    pretrain_alpha: float = Field(default=0.5, ge=0, le=1)
    fold_in_steps: int = Field(default=30, ge=1)
    fold_in_items: int = Field(default=512, ge=0)


# ------------------------------------------------------------------------------------------
# torch modules, defined on first use so that importing aisle.models does not import torch
# ------------------------------------------------------------------------------------------

_NETS: dict[str, Any] = {}


def _nets() -> dict[str, Any]:
    if _NETS:
        return _NETS
    torch = torch_module()
    nn = torch.nn

    class MFNet(nn.Module):  # type: ignore[misc,name-defined]
        """``x = p_u · q_i + b_i``."""

        def __init__(self, n_users: int, n_items: int, factors: int, init_std: float) -> None:
            super().__init__()
            self.user = nn.Embedding(n_users, factors)
            self.item = nn.Embedding(n_items, factors)
            self.bias = nn.Embedding(n_items, 1)
            nn.init.normal_(self.user.weight, std=init_std)
            nn.init.normal_(self.item.weight, std=init_std)
            nn.init.zeros_(self.bias.weight)
            self.register_buffer("user_start", torch.zeros(factors))
            self.user_dims = [factors]

        def user_tables(self) -> list[Any]:
            return [self.user]

        def pair_logits(self, parts: list[Any], items: Any) -> Any:
            """``(B, m)`` logits of each row's user against its ``m`` items."""
            return torch.einsum("bd,bmd->bm", parts[0], self.item(items)) + self.bias(items).squeeze(-1)

        def cross_logits(self, parts: list[Any], items: Any = None) -> Any:
            """``(B, len(items))``: every row's user against every item of a 1-D list (all: None)."""
            if items is None:
                return parts[0] @ self.item.weight.T + self.bias.weight[:, 0][None, :]
            return parts[0] @ self.item(items).T + self.bias(items).squeeze(-1)[None, :]

        def item_l2(self, items: Any) -> Any:
            return self.item(items).pow(2).sum(-1) + self.bias(items).squeeze(-1).pow(2)

        def item_vectors(self) -> Any:
            return self.item.weight

        def width(self) -> int:
            """Floats held per (user, item) pair by a fold-in step (memory chunking)."""
            return 8

    class NeuMFNet(nn.Module):  # type: ignore[misc,name-defined]
        """GMF and MLP towers with separate embeddings, fused by one output layer."""

        def __init__(self, n_users: int, n_items: int, mode: str, factors: int, layers: int,
                     init_std: float) -> None:
            super().__init__()
            self.mode = mode
            self.gmf = mode in ("neumf", "gmf")
            self.mlp = mode in ("neumf", "mlp")
            self.f = factors
            self.user_dims: list[int] = []
            width = 0
            if self.gmf:
                self.gmf_user = nn.Embedding(n_users, factors)
                self.gmf_item = nn.Embedding(n_items, factors)
                self.user_dims.append(factors)
                width += factors
            if self.mlp:
                self.e = factors * 2 ** (layers - 1)
                self.mlp_user = nn.Embedding(n_users, self.e)
                self.mlp_item = nn.Embedding(n_items, self.e)
                dims = [2 * self.e] + [self.e // 2**k for k in range(layers)]
                self.layers = nn.ModuleList(nn.Linear(dims[k], dims[k + 1]) for k in range(layers))
                for lin in self.layers:
                    nn.init.xavier_uniform_(lin.weight)
                    nn.init.zeros_(lin.bias)
                self.user_dims.append(self.e)
                self.hidden = sum(dims[1:])
                width += factors
            for table in self._tables():
                nn.init.normal_(table.weight, std=init_std)
            self.out = nn.Linear(width, 1)
            nn.init.xavier_uniform_(self.out.weight)
            nn.init.zeros_(self.out.bias)
            self.register_buffer("user_start", torch.zeros(sum(self.user_dims)))

        def _tables(self) -> list[Any]:
            return ([self.gmf_user, self.gmf_item] if self.gmf else []) + (
                [self.mlp_user, self.mlp_item] if self.mlp else [])

        def user_tables(self) -> list[Any]:
            return ([self.gmf_user] if self.gmf else []) + ([self.mlp_user] if self.mlp else [])

        def _mlp_user_half(self, pm: Any) -> Any:
            return pm @ self.layers[0].weight[:, : self.e].T

        def _mlp_item_half(self, qm: Any) -> Any:
            return qm @ self.layers[0].weight[:, self.e:].T + self.layers[0].bias

        def _tail(self, h: Any) -> Any:
            h = torch.relu(h)
            for lin in self.layers[1:]:
                h = torch.relu(lin(h))
            return h

        def pair_logits(self, parts: list[Any], items: Any) -> Any:
            w = self.out.weight[0]
            x = self.out.bias[0]
            k = 0
            if self.gmf:
                x = x + torch.einsum("bd,bmd->bm", parts[0] * w[: self.f], self.gmf_item(items))
                k = 1
            if self.mlp:
                h = self._mlp_user_half(parts[k])[:, None, :] + self._mlp_item_half(self.mlp_item(items))
                x = x + self._tail(h) @ w[-self.f:]
            return x

        def cross_logits(self, parts: list[Any], items: Any = None) -> Any:
            """``(B, len(items))``: every row's user against every item of a 1-D list (all: None)."""
            w = self.out.weight[0]
            table = self.gmf_item if self.gmf else self.mlp_item
            n_items = table.num_embeddings if items is None else int(items.shape[0])
            x = torch.zeros(parts[0].shape[0], n_items, device=parts[0].device, dtype=parts[0].dtype)
            x = x + self.out.bias[0]
            k = 0
            if self.gmf:
                q = self.gmf_item.weight if items is None else self.gmf_item(items)
                x = x + (parts[0] * w[: self.f]) @ q.T
                k = 1
            if self.mlp:
                a = self._mlp_user_half(parts[k])
                c = self._mlp_item_half(self.mlp_item.weight if items is None else self.mlp_item(items))
                step = max(1, _CHUNK_ELEMENTS // max(1, a.shape[0] * self.hidden))
                pieces = [self._tail(a[:, None, :] + c[None, s:s + step, :]) @ w[-self.f:]
                          for s in range(0, n_items, step)]
                x = x + torch.cat(pieces, dim=1)
            return x

        def item_l2(self, items: Any) -> Any:
            out = 0.0
            if self.gmf:
                out = out + self.gmf_item(items).pow(2).sum(-1)
            if self.mlp:
                out = out + self.mlp_item(items).pow(2).sum(-1)
            return out

        def item_vectors(self) -> Any:
            return torch.cat([t.weight for t in self._tables()[1::2]], dim=1)

        def width(self) -> int:
            return 8 + (3 * self.hidden if self.mlp else 0)

    _NETS.update(mf=MFNet, neumf=NeuMFNet)
    return _NETS


# ------------------------------------------------------------------------------------------
# the shared training and fold-in machinery
# ------------------------------------------------------------------------------------------


def _positives(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Entries with weight > 0 as a sorted 0/1 CSR."""
    pos = sp.csr_matrix(matrix > 0, dtype=np.float32)
    pos.eliminate_zeros()
    pos.sort_indices()
    return pos


def _binomial_cdf(torch: Any, s: Any, trials: int, upto: int) -> Any:
    """``P(Binomial(trials, s) <= upto)`` elementwise (``upto`` small)."""
    s = s.clamp(0.0, 1.0)
    log_s = torch.log(s.clamp_min(1e-30))
    log_1s = torch.log1p(-s.clamp_max(1.0 - 1e-7))
    total = torch.zeros_like(s)
    for k in range(min(upto, trials) + 1):
        log_c = math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
        total = total + torch.exp(log_c + k * log_s + (trials - k) * log_1s)
    return total.clamp(0.0, 1.0)


class _SampledNegativesModel(Recommender):
    """Base of :class:`MF` and :class:`NeuMF`: training loop, fold-in, scoring, saving."""

    config: _TrainingConfig

    # ---------------------------------------------------------------- hooks
    def _loss(self) -> str:
        return "bce"

    def _sampler_name(self) -> str:
        return str(getattr(self.config, "sampler", "uniform"))

    def _logq(self) -> bool:
        return False

    def _new_net(self, n_users: int, n_items: int, mode: str | None = None) -> Any:
        raise NotImplementedError

    # ---------------------------------------------------------------- training
    def _fit(self, matrix: sp.csr_matrix) -> None:
        torch = torch_module()
        cfg = self.config
        device = resolve_device(cfg.device)
        pos = _positives(matrix)
        counts = np.bincount(pos.indices, minlength=pos.shape[1]).astype(np.float64)
        rng = np.random.default_rng(cfg.seed)
        with seeded(cfg.seed, cfg.threads or None):
            started = time.perf_counter()
            net = self._trained_net(pos, counts, rng, device)
            self.train_seconds_ = time.perf_counter() - started
            with torch.no_grad():
                start = torch.cat([t.weight.mean(dim=0) for t in net.user_tables()])
                net.user_start.copy_(start)
            self.net_: Any = net
            self.device_: Any = device
            started = time.perf_counter()
            vecs = self._solve_users(pos)
            with torch.no_grad():
                for table, v in zip(net.user_tables(), vecs, strict=True):
                    table.weight.copy_(v)
            self.fold_in_seconds_ = time.perf_counter() - started

    def _trained_net(self, pos: sp.csr_matrix, counts: np.ndarray, rng: np.random.Generator, device: Any) -> Any:
        net = self._new_net(*pos.shape).to(device)
        self.loss_history_, self.negative_popularity_ = self._train(net, pos, counts, rng, device,
                                                                    self.config.epochs, self.name)
        return net

    def _make_sampler(self, net: Any, counts: np.ndarray, device: Any) -> NegativeSampler:
        torch = torch_module()
        score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        if self._sampler_name() == "hard":
            def score_fn(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    parts = [t(torch.as_tensor(rows, device=device)) for t in net.user_tables()]
                    out: np.ndarray = net.pair_logits(parts, torch.as_tensor(items, device=device)).cpu().numpy()
                return out
        return sampler_by_name(self._sampler_name(), counts, alpha=self.config.sampler_alpha,
                               score_fn=score_fn, pool=self.config.hard_pool)

    def _train(self, net: Any, pos: sp.csr_matrix, counts: np.ndarray, rng: np.random.Generator,
               device: Any, epochs: int, label: str) -> tuple[np.ndarray, np.ndarray]:
        """Adam over the positives with sampled negatives; per-epoch loss and negative popularity."""
        torch = torch_module()
        cfg = self.config
        kind = self._sampler_name()
        sampler = self._make_sampler(net, counts, device)
        users_of = np.repeat(np.arange(pos.shape[0], dtype=np.int64), np.diff(pos.indptr))
        items_of = pos.indices.astype(np.int64)
        nnz = items_of.size
        bs = cfg.batch_size
        n = cfg.n_negatives
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        logq = torch.as_tensor(sampler.probabilities(), device=device, dtype=torch.float32).clamp_min(1e-30).log()
        in_batch_logq = logq
        if isinstance(sampler, MixedSampler):
            in_batch_logq = torch.as_tensor(sampler.in_batch.probabilities(), device=device,
                                            dtype=torch.float32).clamp_min(1e-30).log()
        neg_pop: list[float] = []
        with TrainingProgress(label, epochs, math.ceil(nnz / bs)) as bar:
            for _ in range(epochs):
                perm = rng.permutation(nnz)
                u_all, i_all = users_of[perm], items_of[perm]
                negs_all = None
                if kind in ("uniform", "popularity"):
                    negs_all = sampler.sample(u_all, n, rng, positives=pos)
                pop_sum, pop_n = 0.0, 0
                for s in range(0, nnz, bs):
                    u, i = u_all[s:s + bs], i_all[s:s + bs]
                    if negs_all is not None:
                        negs: np.ndarray | None = negs_all[s:s + bs]
                    elif kind == "hard":
                        negs = sampler.sample(u, n, rng, positives=pos)
                    elif kind == "mixed":
                        negs = sampler.sample(np.zeros(1, dtype=np.int64), n, rng)
                    else:
                        negs = None
                    if negs is not None and kind != "mixed":
                        pop_sum += float(counts[negs].sum())
                        pop_n += negs.size
                    else:  # every other positive of the batch is a negative of each row
                        b = len(i)
                        pop_sum += float(counts[i].sum()) * (b - 1)
                        pop_n += b * (b - 1)
                        if negs is not None:
                            pop_sum += float(counts[negs].sum()) * b
                            pop_n += negs.size * b
                    u_t = torch.as_tensor(u, device=device)
                    i_t = torch.as_tensor(i, device=device)
                    n_t = None if negs is None else torch.as_tensor(negs, device=device)
                    loss = self._batch_loss(net, u_t, i_t, n_t, logq, in_batch_logq)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    bar.step(float(loss.detach()))
                neg_pop.append(pop_sum / max(pop_n, 1))
                bar.end_epoch(negative_popularity=neg_pop[-1])
        return np.asarray(bar.losses, dtype=np.float64), np.asarray(neg_pop, dtype=np.float64)

    def _batch_loss(self, net: Any, u: Any, i: Any, negs: Any, logq: Any, in_batch_logq: Any) -> Any:
        torch = torch_module()
        functional = torch.nn.functional
        cfg = self.config
        loss_kind = self._loss()
        parts = [t(u) for t in net.user_tables()]
        user_l2 = sum(p.pow(2).sum(-1) for p in parts)
        kind = self._sampler_name()
        if kind in ("in-batch", "mixed"):
            x = net.cross_logits(parts, i)  # (B, B), the diagonal holds each row's positive
            if self._logq():
                x = x - in_batch_logq[i][None, :]
            b = i.shape[0]
            clash = (i[None, :] == i[:, None]) & ~torch.eye(b, dtype=torch.bool, device=i.device)
            x = x.masked_fill(clash, -torch.inf)
            reg = user_l2 + net.item_l2(i)
            if negs is not None:  # mixed: uniform items shared by the batch
                xu = net.cross_logits(parts, negs[0])
                if self._logq():
                    xu = xu - logq[negs[0]][None, :]
                xu = xu.masked_fill(negs[0][None, :] == i[:, None], -torch.inf)
                x = torch.cat([x, xu], dim=1)
                reg = reg + net.item_l2(negs[0]).sum() / b
            target = torch.arange(b, device=i.device)
            per = functional.cross_entropy(x, target, reduction="none")
        else:
            items = torch.cat([i[:, None], negs], dim=1)
            x = net.pair_logits(parts, items)
            xp, xn = x[:, 0], x[:, 1:]
            if loss_kind == "bce":
                per = functional.softplus(-xp) + functional.softplus(xn).sum(1)
            elif loss_kind == "bpr":
                per = functional.softplus(xn - xp[:, None]).sum(1)
            else:
                if self._logq():
                    x = x - logq[items]
                per = -torch.log_softmax(x, dim=1)[:, 0]
            reg = user_l2 + net.item_l2(items).sum(1)
        return per.mean() + cfg.regularization * reg.mean()

    # ---------------------------------------------------------------- fold-in
    def _fold_in_plan(self) -> dict[str, Any]:
        """What the expected loss needs besides the user's positives (see the module docstring).

        ``weight[j]``: expected number of times item j is a negative of one positive (before the
        user's positives are taken out); ``soft[j]``: its weight in the softmax denominator
        (``weight / Q`` under the logQ correction); ``c_pos``: the correction of positives.
        """
        torch = torch_module()
        cfg = self.config
        counts = np.asarray(self.item_popularity_, dtype=np.float64)
        kind = self._sampler_name()
        dev = self.device_
        if kind in ("in-batch", "mixed"):
            total = counts.sum()
            q_batch = counts / total if total > 0 else np.full(counts.size, 1.0 / counts.size)
            parts = [(cfg.batch_size - 1, q_batch)]
            if kind == "mixed":
                parts.append((cfg.n_negatives, np.full(counts.size, 1.0 / counts.size)))
            renorm, q_pos = False, q_batch
        else:  # per-row samplers redraw positives: their mass moves to the user's other items
            base = "popularity" if kind == "hard" else kind
            q = sampler_by_name(base, counts, alpha=cfg.sampler_alpha).probabilities()
            parts = [(cfg.n_negatives, q)]
            renorm, q_pos = True, q
        corrected = self._logq()
        weight = np.zeros(counts.size)
        soft = np.zeros(counts.size)
        for n, q in parts:
            weight += n * q
            soft += n * (np.ones_like(q) if corrected else q)

        def as_t(a: np.ndarray) -> Any:
            return torch.as_tensor(np.asarray(a), device=dev, dtype=torch.float32)

        cols, iw = self._fold_in_columns(np.asarray(weight))
        return {
            "weight": as_t(weight), "soft": as_t(soft), "renorm": renorm,
            "n": float(sum(n for n, _ in parts)), "total": float(np.sum(weight)),
            "c_pos": as_t(np.log(np.maximum(q_pos, 1e-30)) if corrected else np.zeros(counts.size)),
            "q_base": as_t(np.maximum(q_pos, 1e-30)), "hard": kind == "hard",
            "pool": max(cfg.hard_pool, cfg.n_negatives),
            "cols": None if cols is None else torch.as_tensor(cols, device=dev),
            "iw": as_t(np.ones(counts.size) if iw is None else iw),
        }

    def _fold_in_columns(self, weight: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The items the negative part of the fold-in loss is summed over, with importance weights.

        ``fold_in_items = 0`` (or at least the catalog size): every item, weight 1. Otherwise
        ``fold_in_items`` draws ``R`` (seeded by ``seed``, the same for every user): half from the
        sampler's distribution, half by training popularity (popular items score high, so they
        carry most of the negative term), kept once each with weight ``count / (M R_j)``, so
        every sum over the catalog is estimated without bias.
        """
        m = int(self.config.fold_in_items)
        n_items = weight.size
        if m == 0 or m >= n_items:
            return None, None
        pop = np.asarray(self.item_popularity_, dtype=np.float64) + 1.0
        r = 0.5 * weight / weight.sum() + 0.5 * pop / pop.sum()
        draws = np.random.default_rng([self.config.seed, 1]).choice(n_items, size=m, p=r / r.sum())
        cols, count = np.unique(draws, return_counts=True)
        return cols.astype(np.int64), count / (m * r[cols])

    def _expected_loss(self, plan: dict[str, Any], xs: Any, keep: Any, xp: Any, pos_idx: Any,
                       pos_ok: Any, pos_weight: Any) -> Any:
        """Per-row expected training loss.

        Args:
            plan: from :meth:`_fold_in_plan`.
            xs: ``(r, M)`` logits of the plan's columns.
            keep: ``(r, M)`` 1 where the column is not one of the row's positives.
            xp: ``(r, P)`` logits of each row's positives (padded).
            pos_idx: ``(r, P)`` their item indices; ``pos_ok`` 1 where not padding.
            pos_weight: ``(r,)`` the plan's ``weight`` summed over the row's positives.
        """
        torch = torch_module()
        functional = torch.nn.functional
        cols = plan["cols"]
        iw = plan["iw"]
        w_col = plan["weight"] if cols is None else plan["weight"][cols]
        s_col = plan["soft"] if cols is None else plan["soft"][cols]
        w = w_col[None, :] * iw[None, :] * keep
        soft = s_col[None, :] * iw[None, :] * keep
        if plan["renorm"]:  # W_j = n Q_j / (1 - Q(positives)) on the user's other items
            scale = (plan["total"] / (plan["total"] - pos_weight).clamp_min(1e-30))[:, None]
            w = w * scale
            soft = soft * scale
        if plan["hard"]:
            # j is chosen when fewer than n of the pool's other draws score above it
            q = w / plan["n"]
            order = torch.argsort(xs.detach(), dim=1, descending=True, stable=True)
            q_sorted = torch.gather(q, 1, order)
            above_sorted = torch.cumsum(q_sorted, dim=1) - q_sorted
            above = torch.empty_like(above_sorted).scatter_(1, order, above_sorted)
            chosen = _binomial_cdf(torch, above, plan["pool"] - 1, int(plan["n"]) - 1)
            w = plan["pool"] * q * chosen
            w = w * (plan["n"] / w.sum(1, keepdim=True).clamp_min(1e-30))
            q_base = plan["q_base"] if cols is None else plan["q_base"][cols]
            # the softmax corrects with the pool's base Q (see HardNegativeSampler)
            soft = w / q_base[None, :] if self._logq() else w
        npos = pos_ok.sum(1).clamp_min(1)
        loss_kind = self._loss()
        if loss_kind == "bce":
            lp = (functional.softplus(-xp) * pos_ok).sum(1) / npos
            return lp + (w * functional.softplus(xs)).sum(1)
        if loss_kind == "bpr":
            per = (functional.softplus(xs[:, None, :] - xp[:, :, None]) * w[:, None, :]).sum(-1)
            return (per * pos_ok).sum(1) / npos
        z = xp - plan["c_pos"][pos_idx]
        log_soft = torch.where(soft > 0, soft.clamp_min(1e-30).log(), -torch.inf)
        denom = torch.logsumexp(xs + log_soft, dim=1)
        per = -z + torch.logaddexp(z, denom[:, None])
        return (per * pos_ok).sum(1) / npos

    def _solve_users(self, rows: sp.csr_matrix) -> list[Any]:
        """User embeddings (one tensor per user table) for positive-history rows: the fold-in."""
        torch = torch_module()
        cfg = self.config
        net = self.net_
        dev = self.device_
        n_rows, n_items = rows.shape
        start = torch.split(net.user_start.detach(), list(net.user_dims))
        out = [s[None, :].repeat(n_rows, 1).contiguous() for s in start]
        lengths = np.diff(rows.indptr)
        todo = np.flatnonzero(lengths > 0)
        if todo.size == 0:
            return out
        plan = self._fold_in_plan()
        cols = plan["cols"]
        n_cols = n_items if cols is None else int(cols.shape[0])
        width = int(net.width()) * n_cols + int(lengths.max())
        if self._loss() == "bpr":
            width += 4 * int(lengths.max()) * n_cols
        per_chunk = max(1, _CHUNK_ELEMENTS // width)
        betas, eps = (0.9, 0.999), 1e-8
        for c in range(0, todo.size, per_chunk):
            sel = todo[c:c + per_chunk]
            sub = rows[sel]
            r = sel.size
            sizes = np.diff(sub.indptr)
            rr = np.repeat(np.arange(r), sizes)
            col = np.arange(sub.nnz) - np.repeat(sub.indptr[:-1], sizes)
            pad = np.zeros((r, int(sizes.max())), dtype=np.int64)
            ok = np.zeros(pad.shape, dtype=np.float32)
            pad[rr, col] = sub.indices
            ok[rr, col] = 1.0
            pos_idx, pos_ok = torch.as_tensor(pad, device=dev), torch.as_tensor(ok, device=dev)
            rr_t = torch.as_tensor(rr, device=dev)
            items_t = torch.as_tensor(sub.indices.astype(np.int64), device=dev)
            flat_t = torch.as_tensor(rr * pad.shape[1] + col, device=dev)
            member = torch.zeros(r, n_items, dtype=torch.bool, device=dev)
            member[rr_t, items_t] = True
            keep = (~(member if cols is None else member[:, cols])).float()
            del member
            pos_weight = (plan["weight"][pos_idx] * pos_ok).sum(1)
            params = [s[None, :].repeat(r, 1).contiguous().requires_grad_(True) for s in start]
            m1 = [torch.zeros_like(p) for p in params]
            m2 = [torch.zeros_like(p) for p in params]
            for t in range(cfg.fold_in_steps):
                xs = net.cross_logits(params, cols)
                # the positives' logits, computed once per (row, positive) and laid out padded
                if cols is None:
                    xp_flat = xs[rr_t, items_t]
                else:
                    xp_flat = net.pair_logits([p[rr_t] for p in params], items_t[:, None])[:, 0]
                xp = torch.zeros(pad.size, device=dev, dtype=xs.dtype).index_put((flat_t,), xp_flat).view(pad.shape)
                loss = self._expected_loss(plan, xs, keep, xp, pos_idx, pos_ok, pos_weight)
                loss = loss + cfg.regularization * sum(p.pow(2).sum(-1) for p in params)
                grads = torch.autograd.grad(loss.sum(), params)
                lr = cfg.fold_in_lr * (1.0 - t / cfg.fold_in_steps)
                with torch.no_grad():
                    for p, g, a, b in zip(params, grads, m1, m2, strict=True):
                        a.mul_(betas[0]).add_(g, alpha=1 - betas[0])
                        b.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
                        a_hat = a / (1 - betas[0] ** (t + 1))
                        b_hat = b / (1 - betas[1] ** (t + 1))
                        p.sub_(lr * a_hat / (b_hat.sqrt() + eps))
            sel_t = torch.as_tensor(sel, device=dev)
            for o, p in zip(out, params, strict=True):
                o[sel_t] = p.detach()
        return out

    def fold_in(self, rows: sp.csr_matrix | sp.csr_array) -> list[np.ndarray]:
        """User embeddings (one array per user table) for history rows over the item vocabulary.

        Args:
            rows: ``(n, n_items)`` interactions; entries with weight > 0 are the positives.

        Returns:
            One ``(n, d)`` float32 array per user embedding table (MF: one; NeuMF: GMF, MLP).
        """
        self._check_fitted()
        with torch_module().enable_grad(), torch_threads(self.config.threads):
            return [v.cpu().numpy() for v in self._solve_users(_positives(sp.csr_matrix(rows)))]

    # ---------------------------------------------------------------- scoring
    def _user_scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        with torch_threads(self.config.threads):
            return self._scores(rows, user_index)

    def _scores(self, rows: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        torch = torch_module()
        net = self.net_
        dev = self.device_
        idx = np.asarray(user_index, dtype=np.int64)
        known = idx >= 0
        with torch.no_grad():
            k_t = torch.as_tensor(np.maximum(idx, 0), device=dev)
            parts = [t(k_t) for t in net.user_tables()]
        new = np.flatnonzero(~known)
        if new.size:
            with torch.enable_grad():
                folded = self._solve_users(_positives(sp.csr_matrix(rows)[new]))
            new_t = torch.as_tensor(new, device=dev)
            for p, f in zip(parts, folded, strict=True):
                p[new_t] = f
        with torch.no_grad():
            per = max(1, _CHUNK_ELEMENTS // max(1, len(self.items_) * 4))
            out = [net.cross_logits([p[s:s + per] for p in parts]).float().cpu() for s in range(0, len(idx), per)]
        scores: np.ndarray = torch.cat(out).numpy() if out else np.zeros((0, len(self.items_)), np.float32)
        return scores

    def _item_vectors(self) -> np.ndarray:
        torch = torch_module()
        with torch.no_grad():
            out: np.ndarray = self.net_.item_vectors().detach().float().cpu().numpy()
        return out

    # ---------------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {**state_to_numpy(self.net_), "loss_history": self.loss_history_,
                "negative_popularity": self.negative_popularity_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        torch = torch_module()
        device = resolve_device(self.config.device)
        net = self._new_net(len(self.users_), len(self.items_))
        with torch.no_grad():
            state_from_numpy(net, state)
        self.net_ = net.to(device)
        self.device_ = device
        self.loss_history_ = np.asarray(state.pop("loss_history"), dtype=np.float64)
        self.negative_popularity_ = np.asarray(state.pop("negative_popularity"), dtype=np.float64)
        self.train_seconds_ = self.fold_in_seconds_ = float("nan")  # not saved


class MF(_SampledNegativesModel):
    """Dot-product matrix factorisation ``p_u · q_i + b_i`` trained on sampled negatives.

    Attributes (after ``fit``):
        net_: the torch module (``user``, ``item`` and ``bias`` embeddings).
        loss_history_: mean training loss per epoch.
        negative_popularity_: mean training count of the negatives used, per epoch.
        train_seconds_, fold_in_seconds_: wall time of training and of re-deriving the
            training users (not saved).
    """

    name: ClassVar[str] = "mf"
    Config: ClassVar[type[ModelConfig]] = MFConfig
    config: MFConfig
    #: The same ranges as ``ncf`` except the embedding size (learning rate, λ, negatives,
    #: epochs), so equal tuning budgets search comparable spaces; loss and sampler stay as
    #: configured (BCE + uniform by default, NCF's training).
    search_space: ClassVar[SearchSpace] = {
        "factors": CategoricalParam((16, 32, 64, 128)),
        "learning_rate": FloatParam(1e-3, 3e-2, log=True),
        "regularization": FloatParam(1e-7, 1e-2, log=True),
        "n_negatives": IntParam(1, 8, log=True),
        "epochs": IntParam(5, 30, log=True),
    }

    def _loss(self) -> str:
        return self.config.loss

    def _logq(self) -> bool:
        return self.config.loss == "softmax" and self.config.logq_correction

    def _new_net(self, n_users: int, n_items: int, mode: str | None = None) -> Any:
        return _nets()["mf"](n_users, n_items, self.config.factors, self.config.init_std)

    @property
    def user_factors_(self) -> np.ndarray:
        out: np.ndarray = self.net_.user.weight.detach().cpu().numpy()
        return out

    @property
    def item_factors_(self) -> np.ndarray:
        out: np.ndarray = self.net_.item.weight.detach().cpu().numpy()
        return out


class NeuMF(_SampledNegativesModel):
    """Neural matrix factorisation (GMF + MLP, He et al. 2017), trained with BCE on negatives.

    Attributes (after ``fit``):
        net_: the torch module.
        loss_history_: mean training loss per epoch (of the final NeuMF stage).
        negative_popularity_: mean training count of the negatives used, per epoch.
        train_seconds_, fold_in_seconds_: wall time of training (pretraining included) and of
            re-deriving the training users (not saved).
    """

    name: ClassVar[str] = "ncf"
    Config: ClassVar[type[ModelConfig]] = NeuMFConfig
    config: NeuMFConfig
    #: Predictive factors up to 32 (MLP embeddings of 128 per side, 256 → 128 → 64 → 32): at
    #: 64 one epoch on MovieLens-100K costs minutes on a CPU. Other ranges as ``mf``'s.
    search_space: ClassVar[SearchSpace] = {
        "factors": CategoricalParam((8, 16, 32)),
        "learning_rate": FloatParam(1e-3, 3e-2, log=True),
        "regularization": FloatParam(1e-7, 1e-2, log=True),
        "n_negatives": IntParam(1, 8, log=True),
        "epochs": IntParam(5, 30, log=True),
    }

    def _new_net(self, n_users: int, n_items: int, mode: str | None = None) -> Any:
        cfg = self.config
        return _nets()["neumf"](n_users, n_items, mode or cfg.mode, cfg.factors, cfg.mlp_layers, cfg.init_std)

    def _trained_net(self, pos: sp.csr_matrix, counts: np.ndarray, rng: np.random.Generator, device: Any) -> Any:
        cfg = self.config
        if cfg.mode != "neumf" or cfg.pretrain_epochs == 0:
            return super()._trained_net(pos, counts, rng, device)
        torch = torch_module()
        towers = {}
        for mode in ("gmf", "mlp"):
            towers[mode] = self._new_net(pos.shape[0], pos.shape[1], mode).to(device)
            self._train(towers[mode], pos, counts, rng, device, cfg.pretrain_epochs, f"{self.name} {mode} pretrain")
        net = self._new_net(*pos.shape).to(device)
        g, m = towers["gmf"], towers["mlp"]
        a = cfg.pretrain_alpha
        with torch.no_grad():
            for name in ("gmf_user", "gmf_item"):
                getattr(net, name).weight.copy_(getattr(g, name).weight)
            for name in ("mlp_user", "mlp_item"):
                getattr(net, name).weight.copy_(getattr(m, name).weight)
            net.layers.load_state_dict(m.layers.state_dict())
            net.out.weight.copy_(torch.cat([a * g.out.weight, (1 - a) * m.out.weight], dim=1))
            net.out.bias.copy_(a * g.out.bias + (1 - a) * m.out.bias)
        self.loss_history_, self.negative_popularity_ = self._train(net, pos, counts, rng, device, cfg.epochs, self.name)
        return net

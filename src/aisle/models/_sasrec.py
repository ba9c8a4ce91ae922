"""SASRec (Kang & McAuley, ICDM 2018): next-item prediction with causal self-attention.

The network reads a user's items oldest first (the most recent ``max_len``), adds a learned
position embedding, and runs ``n_blocks`` Transformer blocks (multi-head self-attention with a
causal mask, a GELU feed-forward layer, residuals, layer norm and dropout). The hidden state at
position ``t`` is scored against every item embedding (the input item table doubles as the
output layer; index 0 is padding) to predict the item at ``t + 1``.

Training uses every position of every sequence. The default loss is the **full softmax**
cross-entropy over the whole catalog at each position: Klenitskiy & Vasilev ("Turning Dross
Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys 2023) show it lifts SASRec far
above the binary cross-entropy with one negative of the original paper. ``loss="sampled"``
is a sampled softmax over ``n_negatives`` shared negatives (uniform or popularity sampled) with
the logQ correction, for catalogs too large for the full softmax; ``loss="bce"`` is the
original SASRec objective (one uniform negative per position).

Early stopping (``patience > 0``) holds out the last training item of a ``val_fraction`` of the
users: those users train on their sequence without it, and after each epoch the model ranks
every item (items already in the prefix excluded, as in evaluation) for that held-out item;
the weights of the epoch with the best NDCG@``val_k`` are kept. Nothing of the test split is
used: the training sequences the model gets already end before it.

Scoring a user (known, or folded in from a history event frame: same code path) runs their
ordered sequence through the network and takes the last hidden state's dot product with each
item embedding.

On the S3-Rec Amazon Beauty files (leave-last, full ranking, seen items excluded) the default
config reaches the figures given in ``docs/models.md``.

The module also holds :class:`NextItemRecommender`, the training loop, early stopping, scoring
and saving shared with :class:`~aisle.models.GRU4Rec`: a subclass only builds its network.
"""

from __future__ import annotations

import copy
import math
import time
from abc import abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from aisle.errors import ConfigError, DataError
from aisle.models._base import CategoricalParam, FloatParam, IntParam, ModelConfig, SearchSpace
from aisle.models._sequential import Sequences, SequentialRecommender
from aisle.models._torch import (
    TrainingProgress,
    resolve_device,
    seeded,
    state_from_numpy,
    state_to_numpy,
    torch_module,
    torch_threads,
)

__all__ = ["NextItemConfig", "NextItemRecommender", "SASRec", "SASRecConfig"]

#: Logits per chunk of the full-softmax loss (floats; 4M = 16 MiB, small enough for malloc to
#: reuse the buffer without fresh page faults).
_CE_BUFFER = 1 << 22
#: Batches per length-sorting pool (see :func:`_batches`).
_POOL = 50


class NextItemConfig(ModelConfig):
    """Training settings shared by the next-item models (SASRec, GRU4Rec).

    Attributes:
        embedding_dim: size of the item embeddings (and of the hidden states scored against them).
        max_len: the most recent items of a sequence the network reads; longer training
            sequences are cut into windows of ``max_len`` so every position is trained on.
        dropout: dropout rate of the embeddings and hidden layers.
        loss: ``"ce"`` full-softmax cross-entropy over all items, ``"sampled"`` sampled softmax
            with logQ correction, ``"bce"`` binary cross-entropy with one negative per position.
        n_negatives: negatives per batch for ``loss="sampled"``.
        negative_sampling: ``"uniform"`` or ``"popularity"`` (∝ count ** ``popularity_alpha``)
            for ``loss="sampled"``.
        popularity_alpha: exponent of the popularity sampling.
        learning_rate: Adam(W) step size.
        weight_decay: AdamW's decoupled weight decay.
        batch_size: sequences per optimisation step.
        epochs: passes over the training sequences (the maximum when early stopping).
        patience: stop after this many epochs without a better validation NDCG and keep the
            best epoch's weights; 0 trains ``epochs`` epochs on everything, no validation.
        val_fraction: share of the users whose last training item is held out for validation.
        val_k: cut-off of the validation NDCG.
        device: ``"auto"`` (a GPU when visible), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seed of the initialisation, the batches, dropout and the validation users.
        threads: torch intra-op threads while fitting and scoring (0: torch's default). One by
            default: on a shared or small machine torch's OpenMP threads spin against other
            processes (an epoch took 8x longer with 2 threads than with 1 on a loaded 2-core
            machine); raise it on a dedicated machine with cores to spare.
        score_batch_size: sequences per forward pass when scoring.
    """

    embedding_dim: int = Field(default=64, gt=0)
    max_len: int = Field(default=50, ge=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)
    loss: Literal["ce", "sampled", "bce"] = "ce"
    n_negatives: int = Field(default=256, ge=1)
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    popularity_alpha: float = Field(default=0.75, ge=0)
    learning_rate: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=50, ge=1)
    patience: int = Field(default=5, ge=0)
    val_fraction: float = Field(default=0.2, gt=0, le=1)
    val_k: int = Field(default=10, ge=1)
    device: str = "auto"
    seed: int = Field(default=0, ge=0, lt=2**63)
    threads: int = Field(default=1, ge=0)
    score_batch_size: int = Field(default=1024, ge=1)


def _windows(seqs: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``(inputs, targets)`` of 1-based item ids (0 = padding), ``(n, max_len)`` each.

    A sequence ``s`` gives inputs ``s[:-1]`` and targets ``s[1:]``; a longer one than
    ``max_len + 1`` is cut from the end into windows of ``max_len`` targets.
    """
    inp: list[np.ndarray] = []
    tgt: list[np.ndarray] = []
    for s in seqs:
        end = len(s)
        while end >= 2:
            start = max(0, end - max_len - 1)
            inp.append(s[start:end - 1])
            tgt.append(s[start + 1:end])
            end = start + 1 if start > 0 else 0
    return _pad(inp, max_len), _pad(tgt, max_len)


def _full_softmax_grads(h: Any, weight: Any, target: Any) -> tuple[float, Any, Any]:
    """Summed softmax cross-entropy of ``h @ weight.T`` against ``target``, and its gradients.

    Returns ``(loss, d loss / d h, d loss / d weight)``. The logits are formed a chunk of rows at
    a time into one reused buffer of about 16 MiB, and each chunk's softmax is turned into its
    gradient in place (``softmax - onehot``): one ``exp`` per logit, no autograd graph over the
    ``positions x n_items`` logits. On a CPU this halves the cost of the full softmax, which
    dominates training (against ``F.cross_entropy`` + ``backward``: 0.7 s against 1.4 s for 2,048
    positions over 12,101 items, one thread on a loaded 2-core machine); results match to float32
    rounding.
    """
    torch = torch_module()
    n, n_items = int(h.shape[0]), int(weight.shape[0])
    grad_h = torch.empty_like(h)
    grad_w = torch.zeros_like(weight)
    chunk = max(32, _CE_BUFFER // max(n_items, 1))
    buf = torch.empty((min(chunk, n), n_items), dtype=h.dtype, device=h.device)
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    for start in range(0, n, chunk):
        hc, tc = h[start:start + chunk], target[start:start + chunk]
        rows = torch.arange(hc.shape[0], device=h.device)
        logits = buf[:hc.shape[0]]
        torch.mm(hc, weight.T, out=logits)
        top = logits.max(dim=1, keepdim=True).values
        own = logits[rows, tc] - top.squeeze(1)
        logits.sub_(top).exp_()
        norm = logits.sum(dim=1, keepdim=True)
        total += (norm.squeeze(1).log() - own).sum(dtype=torch.float64)
        logits.div_(norm)
        logits[rows, tc] -= 1.0
        torch.mm(logits, weight, out=grad_h[start:start + chunk])
        grad_w.addmm_(logits.T, hc)
    return float(total), grad_h, grad_w


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of rows of about equal length (little padding to compute over).

    Rows are shuffled, cut into pools of ``_POOL`` batches, sorted by length inside each pool
    and cut into batches; the batches are then shuffled.
    """
    order = rng.permutation(lengths.size)
    pool = batch_size * _POOL
    out: list[np.ndarray] = []
    for start in range(0, order.size, pool):
        rows = order[start:start + pool]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        out.extend(rows[i:i + batch_size] for i in range(0, rows.size, batch_size))
    return [out[int(i)] for i in rng.permutation(len(out))]


def _pad(seqs: list[np.ndarray], max_len: int) -> np.ndarray:
    """Right-padded 1-based ids of the last ``max_len`` items of each sequence."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-max_len:]
        out[r, :len(s)] = s + 1
    return out


class NextItemRecommender(SequentialRecommender):
    """Base of the PyTorch next-item models: training loop, early stopping, scoring, saving.

    A subclass implements :meth:`_build_network`: a module whose ``forward(ids)`` maps right-padded
    1-based item ids ``(batch, length)`` to hidden states ``(batch, length, embedding_dim)``
    (causal: position ``t`` sees items ``<= t`` only) and whose ``item_emb`` embedding holds
    ``n_items + 1`` rows (row 0 padding), the output layer.

    Attributes (after ``fit``):
        net_: the trained network (on the fitting device).
        loss_history_: mean training loss per epoch.
        val_history_: validation NDCG@``val_k`` per epoch (empty without early stopping).
        epoch_seconds_: wall time of each epoch (training and validation).
        best_epoch_: the epoch whose weights were kept (1-based).
    """

    config: NextItemConfig

    @abstractmethod
    def _build_network(self, n_items: int) -> Any:
        """A fresh network for ``n_items`` items (see the class docstring)."""

    # ------------------------------------------------------------------ training
    def _fit_sequences(self, sequences: Sequences, matrix: sp.csr_matrix) -> None:
        cfg = self.config
        torch = torch_module()
        device = resolve_device(cfg.device)
        n_items = matrix.shape[1]
        seqs = sequences.to_list()
        rng = np.random.default_rng(cfg.seed)
        val_users = np.zeros(0, dtype=np.int64)
        if cfg.patience > 0:
            eligible = np.flatnonzero(sequences.lengths() >= 2)
            n_val = math.ceil(cfg.val_fraction * eligible.size)
            val_users = np.sort(rng.choice(eligible, size=n_val, replace=False)) if n_val else val_users
        train_seqs = list(seqs)
        for u in val_users:
            train_seqs[int(u)] = seqs[int(u)][:-1]
        inp, tgt = _windows(train_seqs, cfg.max_len)
        lengths = (inp > 0).sum(axis=1)
        if inp.shape[0] == 0:
            raise DataError(f"model '{self.name}' needs at least one sequence of 2 or more items to train on")
        val_prefix = [seqs[int(u)][:-1] for u in val_users]
        val_target = np.asarray([seqs[int(u)][-1] for u in val_users], dtype=np.int64)
        pop = np.bincount(np.concatenate(train_seqs), minlength=n_items).astype(np.float64)
        with seeded(cfg.seed, cfg.threads or None):
            net = self._build_network(n_items).to(device)
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            sampler = self._negative_sampler(pop, device)
            n_batches = math.ceil(inp.shape[0] / cfg.batch_size)  # pools are whole batches
            losses: list[float] = []
            vals: list[float] = []
            seconds: list[float] = []
            best, best_epoch, best_state, waited = -1.0, 0, None, 0
            with TrainingProgress(self.name, epochs=cfg.epochs, steps_per_epoch=n_batches) as bar:
                for _epoch in range(cfg.epochs):
                    started = time.perf_counter()
                    net.train()
                    for rows in _batches(lengths, cfg.batch_size, rng):
                        width = int(lengths[rows].max())
                        x = torch.from_numpy(inp[rows, :width]).to(device)
                        y = torch.from_numpy(tgt[rows, :width]).to(device)
                        opt.zero_grad(set_to_none=True)
                        loss = self._backward(net, x, y, sampler)
                        opt.step()
                        bar.step(loss)
                    if val_users.size:
                        ndcg = self._validate(net, val_prefix, val_target, device)
                        vals.append(ndcg)
                        bar.end_epoch(val_ndcg=ndcg)
                    else:
                        bar.end_epoch()
                    losses.append(bar.losses[-1])
                    seconds.append(time.perf_counter() - started)
                    if not val_users.size:
                        best_epoch = len(losses)
                        continue
                    if ndcg > best:
                        best, best_epoch, waited = ndcg, len(losses), 0
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        waited += 1
                        if waited >= cfg.patience:
                            break
            if best_state is not None:
                net.load_state_dict(best_state)
        net.eval()
        self.net_: Any = net
        self.device_: Any = device
        self.loss_history_ = np.asarray(losses)
        self.val_history_ = np.asarray(vals)
        self.epoch_seconds_ = np.asarray(seconds)
        self.best_epoch_ = best_epoch

    def _negative_sampler(self, pop: np.ndarray, device: Any) -> tuple[Any, Any] | None:
        """``(probabilities, log q)`` of the negative distribution for the sampled softmax."""
        cfg = self.config
        if cfg.loss != "sampled":
            return None
        torch = torch_module()
        if cfg.negative_sampling == "uniform":
            w = np.ones_like(pop)
        else:
            w = np.maximum(pop, 1.0) ** cfg.popularity_alpha
        q = torch.as_tensor(w / w.sum(), dtype=torch.float32, device=device)
        return q, torch.log(q)

    def _backward(self, net: Any, x: Any, y: Any, sampler: tuple[Any, Any] | None) -> float:
        """The batch's mean loss over its real positions; leaves the gradients in ``net``."""
        hidden = net(x)
        mask = y > 0
        h = hidden[mask]  # (positions, d)
        target = y[mask] - 1  # 0-based
        if self.config.loss != "ce":
            loss = self._sampled_loss(net, h, target, sampler)
            loss.backward()
            return float(loss.detach())
        weight = net.item_emb.weight
        loss_sum, grad_h, grad_w = _full_softmax_grads(h.detach(), weight.detach()[1:], target)
        n = max(int(h.shape[0]), 1)
        h.backward(grad_h / n)  # the input side: every layer, and the item table as input
        weight.grad[1:] += grad_w / n  # the item table as the output layer
        return loss_sum / n

    def _sampled_loss(self, net: Any, h: Any, target: Any, sampler: tuple[Any, Any] | None) -> Any:
        """Sampled softmax (logQ corrected) or binary cross-entropy; ``target`` 0-based."""
        torch = torch_module()
        F = torch.nn.functional
        cfg = self.config
        weight = net.item_emb.weight[1:]
        if cfg.loss == "bce":
            neg = torch.randint(0, weight.shape[0], target.shape, device=h.device)
            pos_logit = (h * weight[target]).sum(-1)
            neg_logit = (h * weight[neg]).sum(-1)
            valid = (neg != target).float()
            return (F.softplus(-pos_logit) + valid * F.softplus(neg_logit)).mean()
        assert sampler is not None
        q, log_q = sampler
        neg = torch.multinomial(q, cfg.n_negatives, replacement=True)
        pos_logit = (h * weight[target]).sum(-1, keepdim=True) - log_q[target][:, None]
        neg_logit = h @ weight[neg].T - log_q[neg][None, :]
        neg_logit = neg_logit.masked_fill(neg[None, :] == target[:, None], float("-inf"))
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=h.device))

    def _validate(self, net: Any, prefixes: list[np.ndarray], targets: np.ndarray, device: Any) -> float:
        """Mean NDCG@val_k of the held-out items, ranking all items minus each prefix's own."""
        torch = torch_module()
        k = self.config.val_k
        total = 0.0
        bs = self.config.score_batch_size
        by_length = np.argsort([min(len(p), self.config.max_len) for p in prefixes], kind="stable")
        for start in range(0, len(prefixes), bs):
            which = by_length[start:start + bs]
            batch = [prefixes[int(i)] for i in which]
            scores = self._forward_scores(net, batch, device)
            rows = np.repeat(np.arange(len(batch)), [len(s) for s in batch])
            cols = np.concatenate(batch)
            tgt = torch.from_numpy(targets[which]).to(device)
            seen = torch.zeros_like(scores, dtype=torch.bool)
            seen[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = True
            own = scores.gather(1, tgt[:, None])
            hit_seen = seen.gather(1, tgt[:, None]).squeeze(1)
            scores = scores.masked_fill(seen, float("-inf"))
            rank = (scores > own).sum(1)
            gain = torch.where((rank < k) & ~hit_seen, 1.0 / torch.log2(rank.double() + 2.0), 0.0)
            total += float(gain.sum())
        return total / max(len(prefixes), 1)

    # ------------------------------------------------------------------ scoring
    def _forward_scores(self, net: Any, seqs: list[np.ndarray], device: Any) -> Any:
        """``(len(seqs), n_items)`` torch scores of non-empty sequences (last hidden state · items)."""
        torch = torch_module()
        max_len = self.config.max_len
        ids = _pad(seqs, max_len)
        lengths = np.minimum(np.asarray([len(s) for s in seqs], dtype=np.int64), max_len)
        ids = ids[:, :int(lengths.max())]
        with torch.no_grad():
            net.eval()
            hidden = net(torch.from_numpy(ids).to(device))
            last = hidden[torch.arange(len(seqs), device=device), torch.from_numpy(lengths - 1).to(device)]
            return last @ net.item_emb.weight[1:].T

    def _score_sequences(self, sequences: list[np.ndarray]) -> np.ndarray:
        n_items = len(self.items_)
        out = np.empty((len(sequences), n_items), dtype=np.float32)
        lengths = np.minimum([len(s) for s in sequences], self.config.max_len)
        # by length, so that each forward pass pads little
        nonempty = [int(i) for i in np.argsort(lengths, kind="stable") if lengths[i] > 0]
        empty = np.flatnonzero(lengths == 0)
        out[empty] = self.item_popularity_  # nothing to read: popularity order
        bs = self.config.score_batch_size
        with torch_threads(self.config.threads):
            for start in range(0, len(nonempty), bs):
                rows = nonempty[start:start + bs]
                scores = self._forward_scores(self.net_, [sequences[i] for i in rows], self.device_)
                out[rows] = scores.float().cpu().numpy()
        return out

    def _item_vectors(self) -> np.ndarray:
        out: np.ndarray = self.net_.item_emb.weight[1:].detach().float().cpu().numpy()
        return out

    # ------------------------------------------------------------------ persistence
    def _model_state(self) -> dict[str, np.ndarray]:
        return {
            **state_to_numpy(self.net_),
            "loss_history": self.loss_history_,
            "val_history": self.val_history_,
            "epoch_seconds": self.epoch_seconds_,
            "best_epoch": np.asarray(self.best_epoch_),
        }

    def _set_model_state(self, state: dict[str, np.ndarray]) -> None:
        device = resolve_device(self.config.device)
        net = self._build_network(len(self.items_))
        state_from_numpy(net, state)
        self.net_ = net.to(device).eval()
        self.device_ = device
        self.loss_history_ = state.pop("loss_history")
        self.val_history_ = state.pop("val_history")
        self.epoch_seconds_ = state.pop("epoch_seconds")
        self.best_epoch_ = int(state.pop("best_epoch"))


class SASRecConfig(NextItemConfig):
    """Config of :class:`SASRec` (the shared training settings are in :class:`NextItemConfig`).

    Attributes:
        n_blocks: Transformer blocks.
        n_heads: attention heads (must divide ``embedding_dim``).
        ffn_dim: width of each block's feed-forward layer.
    """

    n_blocks: int = Field(default=2, ge=1)
    n_heads: int = Field(default=1, ge=1)
    ffn_dim: int = Field(default=256, ge=1)


def _init_weights(torch: Any, module: Any) -> None:
    """Normal(0, 0.02) embeddings and linear layers, zero biases, unit layer norms."""
    nn = torch.nn
    for m in module.modules():
        if isinstance(m, nn.Embedding | nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        module.item_emb.weight[0].zero_()


def _sasrec_network(cfg: SASRecConfig, n_items: int) -> Any:
    torch = torch_module()
    nn = torch.nn

    class SASRecNet(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            d = cfg.embedding_dim
            self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
            self.pos_emb = nn.Embedding(cfg.max_len, d)
            self.norm = nn.LayerNorm(d, eps=1e-12)
            self.drop = nn.Dropout(cfg.dropout)
            layer = nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout, activation="gelu",
                                               batch_first=True, layer_norm_eps=1e-12)
            self.blocks = nn.TransformerEncoder(layer, cfg.n_blocks, enable_nested_tensor=False)

        def forward(self, ids: Any) -> Any:
            length = ids.shape[1]
            pos = torch.arange(length, device=ids.device)
            x = self.drop(self.norm(self.item_emb(ids) + self.pos_emb(pos)[None]))
            causal = torch.triu(torch.full((length, length), float("-inf"), device=ids.device), diagonal=1)
            return self.blocks(x, mask=causal, is_causal=True)

    net = SASRecNet()
    _init_weights(torch, net)
    return net


class SASRec(NextItemRecommender):
    """Self-attentive sequential recommendation (see the module docstring)."""

    name: ClassVar[str] = "sasrec"
    Config: ClassVar[type[ModelConfig]] = SASRecConfig
    config: SASRecConfig
    search_space: ClassVar[SearchSpace] = {
        "embedding_dim": CategoricalParam((32, 64, 128)),
        "n_blocks": IntParam(1, 3),
        "n_heads": CategoricalParam((1, 2)),
        "max_len": CategoricalParam((20, 50, 100, 200)),
        "dropout": FloatParam(0.0, 0.6),
        "learning_rate": FloatParam(1e-4, 1e-2, log=True),
        "weight_decay": FloatParam(1e-6, 0.1, log=True),
    }

    def _build_network(self, n_items: int) -> Any:
        if self.config.embedding_dim % self.config.n_heads:
            raise ConfigError(f"n_heads={self.config.n_heads} must divide embedding_dim={self.config.embedding_dim}")
        return _sasrec_network(self.config, n_items)

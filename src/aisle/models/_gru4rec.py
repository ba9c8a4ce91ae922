"""GRU4Rec (Hidasi et al., ICLR 2016): next-item prediction with a recurrent network.

Item embedding → dropout → GRU (``n_layers``, ``hidden_dim`` units) → a linear projection back
to ``embedding_dim`` → dot product with every item embedding (the input table doubles as the
output layer, as in RecBole's GRU4Rec). Trained, like :class:`~aisle.models.SASRec`, on every
position of every sequence with the full-softmax cross-entropy over all items by default
(``loss="sampled"`` and ``loss="bce"`` as there); cross-entropy is one of the losses of the
authors' own implementation (with BPR-max).

It suits sessions: on session data (``yoochoose``, ``diginetica``) every session is a "user",
and the evaluation folds in the first clicks of each held-out session from its history events,
so the next click is predicted from the session so far without retraining.

The training loop, early stopping, scoring and saving are those of
:class:`~aisle.models._sasrec.NextItemRecommender` (see :class:`~aisle.models._sasrec.NextItemConfig`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from aisle.models._base import CategoricalParam, FloatParam, ModelConfig, SearchSpace
from aisle.models._sasrec import NextItemConfig, NextItemRecommender
from aisle.models._torch import torch_module

__all__ = ["GRU4Rec", "GRU4RecConfig"]


class GRU4RecConfig(NextItemConfig):
    """Config of :class:`GRU4Rec` (the shared training settings are in ``NextItemConfig``).

    Attributes:
        hidden_dim: GRU units per layer.
        n_layers: stacked GRU layers.
    """

    hidden_dim: int = Field(default=128, ge=1)
    n_layers: int = Field(default=1, ge=1)


def _gru4rec_network(cfg: GRU4RecConfig, n_items: int) -> Any:
    torch = torch_module()
    nn = torch.nn

    class GRU4RecNet(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            d = cfg.embedding_dim
            self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
            self.drop = nn.Dropout(cfg.dropout)
            self.gru = nn.GRU(d, cfg.hidden_dim, cfg.n_layers, batch_first=True,
                              dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
            self.out = nn.Linear(cfg.hidden_dim, d)

        def forward(self, ids: Any) -> Any:
            # right padding: the states at real positions never see the padding after them
            hidden, _ = self.gru(self.drop(self.item_emb(ids)))
            return self.out(self.drop(hidden))

    net = GRU4RecNet()
    nn.init.normal_(net.item_emb.weight, std=0.02)
    for name, param in net.gru.named_parameters():
        if name.startswith("weight"):
            nn.init.xavier_uniform_(param)
        else:
            nn.init.zeros_(param)
    with torch.no_grad():
        net.item_emb.weight[0].zero_()
    return net


class GRU4Rec(NextItemRecommender):
    """Session-based recommendation with a GRU (see the module docstring)."""

    name: ClassVar[str] = "gru4rec"
    Config: ClassVar[type[ModelConfig]] = GRU4RecConfig
    config: GRU4RecConfig
    search_space: ClassVar[SearchSpace] = {
        "embedding_dim": CategoricalParam((32, 64, 128)),
        "hidden_dim": CategoricalParam((64, 128, 256)),
        "max_len": CategoricalParam((10, 20, 50)),
        "dropout": FloatParam(0.0, 0.6),
        "learning_rate": FloatParam(1e-4, 1e-2, log=True),
        "weight_decay": FloatParam(1e-6, 0.1, log=True),
    }

    def _build_network(self, n_items: int) -> Any:
        return _gru4rec_network(self.config, n_items)

"""A dataset: the event log with its optional catalog and users table, and where it came from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aisle.errors import DatasetNotFoundError

__all__ = ["Dataset", "SourceFile"]


@dataclass(frozen=True)
class SourceFile:
    """A file a dataset was read from, with its size and checksum (for lineage)."""

    path: str
    bytes: int
    sha256: str


@dataclass
class Dataset:
    """The tables of one shop (or one public dataset) in aisle's canonical schema.

    Attributes:
        name: a short name (``"movielens-100k"``, ``"simulated"``, a file stem ...).
        events: the event log (see :mod:`aisle.data._schema`), sorted by timestamp.
        items: the catalog, one row per item, or ``None``.
        users: the users table, or ``None``.
        has_timestamps: ``False`` when the source only gives an order (sequence files); the
            timestamps then encode order alone and global temporal splits are refused.
        anonymous_sessions: ``True`` when users are unknown and each session stands for a user
            (``user_id`` then equals ``session_id``).
        fixed_split: a published train/test split given with the data, as two event tables.
        sources: the files read, with sizes and sha256 checksums.
        meta: free-form facts about the source (format, campaign, ...).
    """

    name: str
    events: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    has_timestamps: bool = True
    anonymous_sessions: bool = False
    fixed_split: tuple[pd.DataFrame, pd.DataFrame] | None = None
    sources: list[SourceFile] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return len(self.events)

    @property
    def n_users(self) -> int:
        return int(self.events["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.events["item_id"].nunique())

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_events={self.n_events}, n_users={self.n_users}, "
            f"n_items={self.n_items}, catalog={'yes' if self.items is not None else 'no'})"
        )

    def save(self, directory: str | Path) -> Path:
        """Write the tables as Parquet and the metadata as JSON into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.events.to_parquet(out / "events.parquet", index=False)
        if self.items is not None:
            self.items.to_parquet(out / "items.parquet", index=False)
        if self.users is not None:
            self.users.to_parquet(out / "users.parquet", index=False)
        if self.fixed_split is not None:
            self.fixed_split[0].to_parquet(out / "train.parquet", index=False)
            self.fixed_split[1].to_parquet(out / "test.parquet", index=False)
        info = {
            "name": self.name,
            "has_timestamps": self.has_timestamps,
            "anonymous_sessions": self.anonymous_sessions,
            "sources": [s.__dict__ for s in self.sources],
            "meta": self.meta,
        }
        (out / "dataset.json").write_text(json.dumps(info, indent=2, default=str))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a dataset written by :meth:`save`."""
        src = Path(directory)
        if not (src / "dataset.json").exists():
            raise DatasetNotFoundError(
                f"{src} holds no saved dataset (dataset.json is missing); "
                "write one with Dataset.save(directory)"
            )
        info = json.loads((src / "dataset.json").read_text())

        def opt(name: str) -> pd.DataFrame | None:
            p = src / f"{name}.parquet"
            return pd.read_parquet(p) if p.exists() else None

        train, test = opt("train"), opt("test")
        return cls(
            name=info["name"],
            events=pd.read_parquet(src / "events.parquet"),
            items=opt("items"),
            users=opt("users"),
            has_timestamps=info["has_timestamps"],
            anonymous_sessions=info.get("anonymous_sessions", False),
            fixed_split=(train, test) if train is not None and test is not None else None,
            sources=[SourceFile(**s) for s in info["sources"]],
            meta=info["meta"],
        )

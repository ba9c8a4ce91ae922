"""The public datasets aisle loads by name: registry, loaders, downloads and the OBD bandit log.

Example:
    >>> from aisle.datasets import load_dataset, list_datasets
    >>> ds = load_dataset("movielens-100k", split="u1")  # doctest: +SKIP
    >>> [s.name for s in list_datasets() if s.present]  # doctest: +SKIP
"""

from aisle.datasets._download import download_dataset
from aisle.datasets._loaders import load_dataset, load_movielens_tags, load_sampled_negatives
from aisle.datasets._obd import CAMPAIGNS, POLICIES, BanditLog, load_bandit_log, load_bts_prior
from aisle.datasets._registry import (
    DATASETS,
    DatasetInfo,
    DatasetKind,
    DatasetStatus,
    DownloadSource,
    FileInfo,
    FileStatus,
    dataset_status,
    get_dataset_info,
    list_datasets,
)

__all__ = [
    "CAMPAIGNS",
    "DATASETS",
    "POLICIES",
    "BanditLog",
    "DatasetInfo",
    "DatasetKind",
    "DatasetStatus",
    "DownloadSource",
    "FileInfo",
    "FileStatus",
    "dataset_status",
    "download_dataset",
    "get_dataset_info",
    "list_datasets",
    "load_bandit_log",
    "load_bts_prior",
    "load_dataset",
    "load_movielens_tags",
    "load_sampled_negatives",
]

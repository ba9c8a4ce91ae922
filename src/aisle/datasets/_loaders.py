"""Load the registered public datasets by name into aisle's canonical :class:`~aisle.data.Dataset`.

Every loader reads the files as published (no preprocessing beyond what the format needs), runs
them through the data stage's validation (:func:`~aisle.data.conform_events` and friends), and
records each file read with its size and sha256 in ``Dataset.sources``. A file whose checksum
differs from the registry loads with a :class:`~aisle.errors.DataWarning`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aisle.data import (
    Dataset,
    LoadReport,
    conform_catalog,
    conform_events,
    conform_users,
    read_events,
    read_split,
)
from aisle.datasets._obd import CAMPAIGNS, N_POSITIONS, POLICIES, USER_FEATURES, read_log_frame
from aisle.datasets._registry import (
    DatasetInfo,
    checked_source,
    dataset_folder,
    get_dataset_info,
)
from aisle.errors import ConfigError

__all__ = ["load_dataset", "load_movielens_tags", "load_sampled_negatives"]

#: Multi-valued attributes (genres, attribute ids, tags) are joined with this separator.
MULTI_SEP = "|"

_Loader = Callable[[DatasetInfo, str | Path | None, str | None, dict[str, Any]], Dataset]


def _reports(*reports: LoadReport) -> list[dict[str, Any]]:
    return [r.to_dict() for r in reports]


def _text_frame(path: Path, **kwargs: Any) -> pd.DataFrame:
    """A delimited text file read as strings, with only empty cells missing."""
    frame: pd.DataFrame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **kwargs)
    return frame


def _combine_split(
    train: pd.DataFrame, test: pd.DataFrame
) -> tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]]:
    """The union of a published train/test pair (as :func:`~aisle.data.read_split` builds it)."""
    events = pd.concat([train, test], ignore_index=True)
    dup = events["event_id"].duplicated()
    if dup.any():  # the same row in both files: keep the ids distinct, the rows both
        events.loc[dup, "event_id"] = events.loc[dup, "event_id"] + "-test"
        test = events.iloc[len(train):].reset_index(drop=True)
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    return events.iloc[order].reset_index(drop=True), (train, test)


# --- MovieLens 100K ------------------------------------------------------------------------------


def _ml100k_items(folder: Path) -> tuple[pd.DataFrame, LoadReport]:
    genre_table = _text_frame(folder / "u.genre", sep="|", header=None, names=["genre", "index"],
                              encoding="latin-1").dropna()
    genres = genre_table.assign(index=genre_table["index"].astype(int)).sort_values("index")["genre"].tolist()
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    raw = _text_frame(folder / "u.item", sep="|", header=None, names=names, encoding="latin-1")
    flags = raw[genres].astype(int).to_numpy(dtype=bool)
    joined = [MULTI_SEP.join(g for g, on in zip(genres, row, strict=True) if on) for row in flags]
    genre_col = pd.Series(joined, dtype="str")
    genre_col = genre_col.where(genre_col != "")
    frame = pd.DataFrame(
        {
            "item_id": raw["item_id"],
            "title": raw["title"],
            "category": genre_col,
            "genres": genre_col,
            "imdb_url": raw["imdb_url"],
        }
    )
    items, report = conform_catalog(frame, source=str(folder / "u.item"))
    # Release dates go back to 1922, which the catalog validation rejects as "before 1970" (it
    # guards against unit mistakes in event times), so they are parsed here and set afterwards.
    released = pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce", utc=True)
    by_item = pd.Series(released.to_numpy(), index=raw["item_id"].to_numpy())
    items["created_at"] = items["item_id"].map(by_item).astype(pd.DatetimeTZDtype("ns", "UTC"))
    return items, report


def _ml100k_users(folder: Path) -> tuple[pd.DataFrame, LoadReport]:
    raw = _text_frame(
        folder / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip"],
        encoding="latin-1",
    )
    frame = pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "segment": raw["occupation"],
            "age": pd.to_numeric(raw["age"]).astype("int64"),
            "gender": raw["gender"],
            "occupation": raw["occupation"],
            "zip": raw["zip"],
        }
    )
    return conform_users(frame, source=str(folder / "u.user"))


def _load_movielens_100k(
    info: DatasetInfo, data_home: str | Path | None, split: str | None, options: dict[str, Any]
) -> Dataset:
    ratings = ["u.data"] if split is None else [f"{split}.base", f"{split}.test"]
    meta_files = ["u.item", "u.genre", "u.user"]
    folder = dataset_folder(info, data_home, require=[*ratings, *meta_files])
    pairs: dict[str, Any] = {"format": "pairs", "event_type": "rating", "timestamp_unit": "s", "sep": "\t"}
    if split is None:
        events, report, _ = read_events(folder / "u.data", **pairs)
        ds = Dataset(name=info.name, events=events, meta={"load_reports": _reports(report)})
    else:
        ds = read_split(folder / ratings[0], folder / ratings[1], name=info.name, **pairs)
        ds.meta = {"load_reports": ds.meta["load_reports"]}
    ds.items, rep_items = _ml100k_items(folder)
    ds.users, rep_users = _ml100k_users(folder)
    ds.meta["load_reports"] += _reports(rep_items, rep_users)
    ds.sources = [checked_source(info, folder, f) for f in [*ratings, *meta_files]]
    return ds


# --- MovieLens latest-small ----------------------------------------------------------------------


def _mlsmall_tags(folder: Path) -> pd.DataFrame:
    raw = _text_frame(folder / "tags.csv", encoding="utf-8")
    return pd.DataFrame(
        {
            "user_id": raw["userId"],
            "item_id": raw["movieId"],
            "tag": raw["tag"].str.strip(),
            "timestamp": pd.to_datetime(pd.to_numeric(raw["timestamp"]), unit="s", utc=True).astype(
                pd.DatetimeTZDtype("ns", "UTC")
            ),
        }
    )


def _load_movielens_latest_small(
    info: DatasetInfo, data_home: str | Path | None, split: str | None, options: dict[str, Any]
) -> Dataset:
    files = ["ratings.csv", "movies.csv", "tags.csv", "links.csv"]
    folder = dataset_folder(info, data_home, require=files)
    events, report, _ = read_events(
        folder / "ratings.csv", format="csv", sep=",", event_type="rating", timestamp_unit="s",
        mapping={"user_id": "userId", "item_id": "movieId", "value": "rating"},
    )
    movies = _text_frame(folder / "movies.csv", encoding="utf-8")
    genres = movies["genres"].where(movies["genres"] != "(no genres listed)")
    year = movies["title"].str.extract(r"\((\d{4})\)\s*$", expand=False)
    tags = _mlsmall_tags(folder)
    distinct = tags.drop_duplicates(["item_id", "tag"])
    by_item = distinct.groupby("item_id", sort=False)["tag"]
    links = _text_frame(folder / "links.csv", encoding="utf-8").set_index("movieId")
    frame = pd.DataFrame(
        {
            "item_id": movies["movieId"],
            "title": movies["title"],
            "category": genres,
            "text": movies["movieId"].map(by_item.agg(", ".join)),
            "genres": genres,
            "tags": movies["movieId"].map(by_item.agg(MULTI_SEP.join)),
            "year": pd.to_numeric(year).astype(float),
            "imdb_id": movies["movieId"].map(links["imdbId"]),
            "tmdb_id": movies["movieId"].map(links["tmdbId"]),
        }
    )
    items, rep_items = conform_catalog(frame, source=str(folder / "movies.csv"))
    return Dataset(
        name=info.name,
        events=events,
        items=items,
        sources=[checked_source(info, folder, f) for f in files],
        meta={
            "load_reports": _reports(report, rep_items),
            "tags_path": str(folder / "tags.csv"),
            "n_tags": len(tags),
        },
    )


def load_movielens_tags(data_home: str | Path | None = None) -> pd.DataFrame:
    """The free-text tags of ml-latest-small, one row per tag application.

    Args:
        data_home: the data home (default: ``AISLE_DATA_HOME``).

    Returns:
        A frame with ``user_id``, ``item_id``, ``tag`` (str) and ``timestamp`` (UTC), in file
        order (3,683 rows).
    """
    info = get_dataset_info("movielens-latest-small")
    folder = dataset_folder(info, data_home, require=["tags.csv"])
    return _mlsmall_tags(folder)


# --- S3-Rec sequences ----------------------------------------------------------------------------

_S3REC_FILES: dict[str, str] = {"s3rec-beauty": "Beauty", "s3rec-lastfm": "LastFM"}
_SAMPLED_NEGATIVES: dict[str, str] = {"s3rec-lastfm": "LastFM_sample.txt"}


def _load_s3rec(
    info: DatasetInfo, data_home: str | Path | None, split: str | None, options: dict[str, Any]
) -> Dataset:
    stem = _S3REC_FILES[info.name]
    files = [f"{stem}.txt", f"{stem}_item2attributes.json"]
    folder = dataset_folder(info, data_home, require=files)
    events, report, has_timestamps = read_events(folder / files[0], format="sequences")
    with (folder / files[1]).open("r", encoding="utf-8") as fh:
        attributes: dict[str, list[int]] = json.load(fh)
    ids = [[str(a) for a in attrs] for attrs in attributes.values()]
    # The attribute lists repeat ids (LastFM: one entry per tagging); ``attributes`` keeps the
    # list as published, ``category`` the distinct ids in first-seen order.
    frame = pd.DataFrame(
        {
            "item_id": list(attributes),
            "category": [MULTI_SEP.join(dict.fromkeys(a)) if a else None for a in ids],
            "attributes": [" ".join(a) if a else None for a in ids],
        }
    )
    items, rep_items = conform_catalog(frame, source=str(folder / files[1]))
    meta: dict[str, Any] = {
        "load_reports": _reports(report, rep_items),
        "n_attributes": len({a for attrs in ids for a in attrs}),
        "protocol": "leave-one-out: the last item of each sequence is the test item, the one "
        "before it the validation item",
    }
    sources = [checked_source(info, folder, f) for f in files]
    negatives = _SAMPLED_NEGATIVES.get(info.name)
    if negatives is not None and (folder / negatives).is_file():
        meta["sampled_negatives"] = str(folder / negatives)
        sources.append(checked_source(info, folder, negatives))
    return Dataset(
        name=info.name, events=events, items=items, has_timestamps=has_timestamps, sources=sources, meta=meta
    )


def load_sampled_negatives(
    name: str = "s3rec-lastfm", data_home: str | Path | None = None
) -> dict[str, list[str]]:
    """The 99 sampled negative items per user that S3-Rec's sampled HR/NDCG ranks against.

    Args:
        name: the dataset; only ``s3rec-lastfm`` ships its sample file (the Beauty one was
            too large to copy).
        data_home: the data home (default: ``AISLE_DATA_HOME``).

    Returns:
        user id -> the negative item ids, in file order (ids as in the loaded events).

    Raises:
        ConfigError: the dataset has no sampled negatives.
    """
    info = get_dataset_info(name)
    file = _SAMPLED_NEGATIVES.get(info.name)
    if file is None:
        raise ConfigError(
            f"{info.name!r} has no sampled negatives in the shared data; "
            f"datasets with them: {', '.join(_SAMPLED_NEGATIVES)}"
        )
    folder = dataset_folder(info, data_home, require=[file])
    out: dict[str, list[str]] = {}
    with (folder / file).open("r", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if parts:
                out[parts[0]] = parts[1:]
    return out


# --- session logs --------------------------------------------------------------------------------

_YOOCHOOSE_SPLITS: dict[str | None, tuple[str, str]] = {
    None: ("train_full", "test"),
    "test": ("train_full", "test"),
    "tr-valid": ("train_tr", "train_valid"),
}


def _read_yoochoose(path: Path) -> tuple[pd.DataFrame, LoadReport]:
    raw = pd.read_csv(path, sep="\t", dtype={"SessionId": str, "ItemId": str, "Time": float})
    frame = pd.DataFrame(
        {
            "user_id": raw["SessionId"],
            "session_id": raw["SessionId"],
            "item_id": raw["ItemId"],
            # unix seconds with 3 decimals: round to whole milliseconds and convert here, exactly
            # (a float multiplication to nanoseconds would add sub-microsecond noise)
            "timestamp": pd.to_datetime(np.round(raw["Time"].to_numpy() * 1000).astype(np.int64), unit="ms", utc=True),
        }
    )
    return conform_events(frame, source=str(path), event_type="click")


def _load_yoochoose(
    info: DatasetInfo, data_home: str | Path | None, split: str | None, options: dict[str, Any]
) -> Dataset:
    parts = _YOOCHOOSE_SPLITS[split]
    files = [f"yoochoose-clicks-100k_{p}.txt" for p in parts]
    folder = dataset_folder(info, data_home, require=files)
    train, rep_train = _read_yoochoose(folder / files[0])
    test, rep_test = _read_yoochoose(folder / files[1])
    events, fixed = _combine_split(train, test)
    return Dataset(
        name=info.name,
        events=events,
        anonymous_sessions=True,
        fixed_split=fixed,
        sources=[checked_source(info, folder, f) for f in files],
        meta={"load_reports": _reports(rep_train, rep_test), "split_files": list(parts)},
    )


def _load_diginetica(
    info: DatasetInfo, data_home: str | Path | None, split: str | None, options: dict[str, Any]
) -> Dataset:
    file = "sample_train-item-views.csv"
    folder = dataset_folder(info, data_home, require=[file])
    raw = pd.read_csv(
        folder / file, sep=";", dtype=str, keep_default_na=False, na_values=["", "NA"]
    )
    # timeframe is ms since the session started; eventdate is the day of each view. A session
    # that crosses midnight spans two dates, so anchor every view at its session's first date to
    # keep the within-session order that timeframe gives.
    day = pd.to_datetime(raw["eventdate"], format="%Y-%m-%d", utc=True)
    start = day.groupby(raw["session_id"]).transform("min")
    timestamp = start + pd.to_timedelta(pd.to_numeric(raw["timeframe"]), unit="ms")
    frame = pd.DataFrame(
        {
            "user_id": raw["session_id"],
            "session_id": raw["session_id"],
            "item_id": raw["item_id"],
            "timestamp": timestamp,
        }
    )
    events, report = conform_events(frame, source=str(folder / file), event_type="view")
    known = raw["user_id"].notna()
    return Dataset(
        name=info.name,
        events=events,
        anonymous_sessions=True,
        sources=[checked_source(info, folder, file)],
        meta={
            "load_reports": _reports(report),
            "n_rows_with_user_id": int(known.sum()),
            "n_sessions_with_user_id": int(raw.loc[known, "session_id"].nunique()),
            "timestamps": "session date (UTC midnight) + timeframe; the time of day is not known",
        },
    )


# --- Open Bandit Dataset -------------------------------------------------------------------------


def _load_obd(
    info: DatasetInfo, data_home: str | Path | None, split: str | None, options: dict[str, Any]
) -> Dataset:
    campaign = options.get("campaign", "all")
    policy = options.get("policy", "random")
    log, item_context, sources = read_log_frame(campaign, policy, data_home)
    user_hash = pd.util.hash_pandas_object(log[list(USER_FEATURES)], index=False).to_numpy()
    views = pd.DataFrame(
        {
            "user_id": pd.Series(user_hash).map("{:016x}".format).astype("str"),
            "item_id": log["item_id"].astype("str"),
            "event_type": "view",
            "timestamp": log["timestamp"],
            "session_id": log["row"].astype("str"),
            "page": campaign,
            "position": log["position"].astype(float),
            "_order": np.arange(len(log)) * 2,
        }
    )
    clicks = views.loc[log["click"].to_numpy() == 1].assign(event_type="click")
    clicks["_order"] += 1
    frame = pd.concat([views, clicks], ignore_index=True).sort_values("_order", kind="stable")
    events, report = conform_events(
        frame.drop(columns="_order"), source=sources[0].path
    )
    catalog = item_context.assign(item_id=item_context["item_id"].astype("str"))
    items, rep_items = conform_catalog(catalog, source=sources[1].path)
    return Dataset(
        name=info.name,
        events=events,
        items=items,
        sources=sources,
        meta={
            "load_reports": _reports(report, rep_items),
            "campaign": campaign,
            "policy": policy,
            "n_impressions": len(log),
            "n_actions": len(item_context),
            "n_positions": N_POSITIONS,
            "propensities": "in the bandit log: aisle.datasets.load_bandit_log(campaign, policy)",
        },
    )


_LOADERS: dict[str, _Loader] = {
    "movielens-100k": _load_movielens_100k,
    "movielens-latest-small": _load_movielens_latest_small,
    "s3rec-beauty": _load_s3rec,
    "s3rec-lastfm": _load_s3rec,
    "yoochoose-sample": _load_yoochoose,
    "diginetica-sample": _load_diginetica,
    "obd": _load_obd,
}

_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"obd": {"campaign": CAMPAIGNS[0], "policy": POLICIES[0]}}


def _check_options(info: DatasetInfo, split: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    if split is not None and split not in info.splits:
        valid = f"one of {', '.join(info.splits)}" if info.splits else "none (it has no published split)"
        raise ConfigError(f"dataset {info.name!r} has no split {split!r}; valid splits: {valid}")
    allowed = dict(info.options)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"dataset {info.name!r} takes no option {', '.join(unknown)}; valid options: {valid}")
    resolved = {**_DEFAULT_OPTIONS.get(info.name, {}), **options}
    for key, value in resolved.items():
        if value not in allowed[key]:
            raise ConfigError(
                f"dataset {info.name!r}: option {key}={value!r} is not one of {', '.join(allowed[key])}"
            )
    return resolved


def load_dataset(
    name: str, *, data_home: str | Path | None = None, split: str | None = None, **options: Any
) -> Dataset:
    """Load a registered public dataset by name.

    Args:
        name: a name from :func:`~aisle.datasets.list_datasets` (``movielens-100k``,
            ``movielens-latest-small``, ``s3rec-beauty``, ``s3rec-lastfm``, ``yoochoose-sample``,
            ``diginetica-sample``, ``obd``) or an alias such as the folder name.
        data_home: the folder holding the datasets (default: ``AISLE_DATA_HOME``, else
            ``~/.cache/aisle/data``).
        split: a published split to put in ``Dataset.fixed_split``: ``u1``..``u5``, ``ua``,
            ``ub`` for MovieLens 100K; ``test`` (train_full/test, the default) or ``tr-valid``
            (train_tr/train_valid) for YooChoose.
        **options: dataset options: ``campaign`` (all/men/women) and ``policy`` (random/bts)
            for ``obd``.

    Returns:
        The :class:`~aisle.data.Dataset`, named by its canonical name, with ``sources`` (path,
        bytes, sha256 of every file read) and ``meta`` (kind, split, options, load reports).

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), split or option.
        DatasetNotFoundError: the dataset's folder or files are not under the data home.

    Example:
        >>> ds = load_dataset("movielens-100k", split="u1")  # doctest: +SKIP
        >>> len(ds.fixed_split[0]), len(ds.fixed_split[1])  # doctest: +SKIP
        (80000, 20000)
    """
    info = get_dataset_info(name)
    resolved = _check_options(info, split, options)
    ds = _LOADERS[info.name](info, data_home, split, resolved)
    ds.name = info.name
    ds.meta = {
        "dataset": info.name,
        "kind": info.kind,
        "folder": info.folder,
        "split": split,
        "options": resolved,
        "license": info.license,
        **ds.meta,
    }
    return ds


"""Read events from files and frames in the formats shops and public benchmarks use.

Formats (``format=``):

``csv`` / ``tsv``
    A table with a header row, one event per row; the delimiter is sniffed (``,`` ``;`` tab ``|``).
    Columns are renamed by a mapping (``{"user_id": "userId"}``).
``parquet``
    The same as a Parquet file.
``sequences``
    One user per line, ``user item item ...``, oldest first (the S3-Rec / SASRec layout). The
    file has no timestamps: aisle gives each event a timestamp that only encodes its order
    (``Dataset.has_timestamps`` is ``False``) so that global time cuts are refused.
``pairs``
    ``user item [rating] [timestamp]`` per line, whitespace, tab or comma separated, no header
    (the MovieLens ``u.data`` layout). With a rating the event type is ``rating``.

``auto`` picks by extension: ``.parquet`` -> parquet, ``.csv`` / ``.tsv`` -> csv, anything else
is sniffed (a header row with names -> csv, else pairs).

A fixed split published as two files (``--train FILE --test FILE``) is read by
:func:`read_split` in any of these formats.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from aisle.data._conform import LoadReport, OnError, conform_catalog, conform_events, conform_users
from aisle.data._dataset import Dataset, SourceFile
from aisle.errors import ConfigError, DataError, DatasetNotFoundError
from aisle.settings import get_settings

__all__ = [
    "FORMATS",
    "Format",
    "file_checksum",
    "load_data",
    "read_events",
    "read_split",
]

Format = Literal["auto", "csv", "tsv", "parquet", "sequences", "pairs"]
FORMATS: tuple[str, ...] = ("auto", "csv", "tsv", "parquet", "sequences", "pairs")

#: Sequence files carry order only; their events get timestamps from this origin, one second apart.
ORDER_ORIGIN = pd.Timestamp("2000-01-01T00:00:00Z")


def file_checksum(path: str | Path) -> SourceFile:
    """Size and sha256 of a file, for lineage."""
    p = Path(path)
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return SourceFile(path=str(p), bytes=p.stat().st_size, sha256=h.hexdigest())


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetNotFoundError(f"data file {p} does not exist; check the path (relative to {Path.cwd()})")
    if p.is_dir():
        raise ConfigError(f"{p} is a folder; give the events file inside it")
    return p


def _sniff(path: Path) -> tuple[str, str]:
    """Guess (format, delimiter) from the first lines."""
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        head = "".join(fh.readline() for _ in range(5))
    first = head.splitlines()[0] if head else ""
    try:
        delim = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        delim = "\t" if "\t" in first else "," if "," in first else " "
    tokens = [t for t in (first.split(delim) if delim != " " else first.split()) if t.strip()]
    has_header = any(not _numeric(t) for t in tokens)
    return ("csv" if has_header else "pairs"), delim


def _numeric(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _quarantine_path(source: Path | str, quarantine_path: str | Path | None) -> Path:
    if quarantine_path is not None:
        return Path(quarantine_path)
    stem = Path(str(source)).name.replace(".", "_")
    return get_settings().quarantine_dir / f"{stem}.quarantine.csv"


def _read_sequences(path: Path) -> tuple[pd.DataFrame, int]:
    users: list[str] = []
    items: list[str] = []
    order: list[int] = []
    bad_lines = 0
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                bad_lines += 1
                continue
            users.extend([parts[0]] * (len(parts) - 1))
            items.extend(parts[1:])
            order.extend(range(len(parts) - 1))
    ts = ORDER_ORIGIN + pd.to_timedelta(np.asarray(order, dtype=np.int64), unit="s")
    frame = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": ts})
    return frame, bad_lines


def _read_pairs(path: Path, delim: str) -> pd.DataFrame:
    sep = r"\s+" if delim in (" ", "\t") else delim
    frame = pd.read_csv(path, sep=sep, header=None, dtype=str, engine="python" if sep == r"\s+" else "c",
                        keep_default_na=False, na_values=[""])
    ncol = frame.shape[1]
    if ncol < 2 or ncol > 4:
        raise DataError(
            f"{path}: the pairs format has 2 to 4 columns (user item [rating] [timestamp]); found {ncol}. "
            "Use --format csv with a header row for other layouts"
        )
    frame.columns = ["user_id", "item_id", "value", "timestamp"][:ncol]
    return frame


def read_events(
    source: Any,
    *,
    format: Format = "auto",
    mapping: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    quarantine_path: str | Path | None = None,
    event_type: str | None = None,
    timestamp_unit: str = "auto",
    sep: str | None = None,
) -> tuple[pd.DataFrame, LoadReport, bool]:
    """Read an events file (or frame) into the canonical event log.

    Args:
        source: a path (CSV, TSV, Parquet, sequences or pairs text file), or a pandas/polars
            DataFrame or Arrow table.
        format: one of :data:`FORMATS`.
        mapping: canonical column name -> source column name (csv and parquet).
        on_error: ``"raise"`` or ``"quarantine"`` (see :func:`~aisle.data.conform_events`).
        quarantine_path: the CSV that receives bad rows; default
            ``$AISLE_WORKSPACE/quarantine/<file>.quarantine.csv``.
        event_type: the type of every event when the source has none (default: ``rating``
            for pairs with a rating, ``click`` otherwise).
        timestamp_unit: unit of numeric timestamps (``auto``, s, ms, us, ns).
        sep: the delimiter of a csv file (default: sniffed).

    Returns:
        ``(events, report, has_timestamps)``.
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if not isinstance(source, (str, Path)):
        events, report = conform_events(source, mapping=mapping, on_error=on_error,
                                        quarantine_path=quarantine_path, event_type=event_type,
                                        timestamp_unit=timestamp_unit)
        return events, report, True
    path = _existing(source)
    fmt: str = format
    delim = sep
    if fmt == "auto":
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            fmt = "parquet"
        else:
            fmt, sniffed = _sniff(path)
            delim = delim or sniffed
    elif fmt in ("csv", "tsv", "pairs") and delim is None:
        delim = "\t" if fmt == "tsv" else _sniff(path)[1]
    has_timestamps = True
    qpath = _quarantine_path(path, quarantine_path)
    if fmt == "parquet":
        frame = pd.read_parquet(path)
    elif fmt in ("csv", "tsv"):
        try:
            frame = pd.read_csv(path, sep=delim, dtype=str, keep_default_na=False, na_values=[""],
                                skip_blank_lines=False, encoding_errors="replace")
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: not a readable {fmt} file ({exc}); check the delimiter (--sep)") from exc
    elif fmt == "sequences":
        if mapping:
            raise ConfigError("a column mapping does not apply to --format sequences")
        frame, _ = _read_sequences(path)
        has_timestamps = False
        event_type = event_type or "click"
    else:  # pairs
        if mapping:
            raise ConfigError("a column mapping does not apply to --format pairs")
        frame = _read_pairs(path, delim or "\t")
        if "timestamp" not in frame.columns:
            frame["timestamp"] = ORDER_ORIGIN + pd.to_timedelta(np.arange(len(frame)), unit="s")
            has_timestamps = False
        if event_type is None:
            event_type = "rating" if "value" in frame.columns else "click"
    events, report = conform_events(frame, source=str(path), mapping=mapping, on_error=on_error,
                                    quarantine_path=qpath, event_type=event_type,
                                    timestamp_unit=timestamp_unit)
    return events, report, has_timestamps


def read_split(
    train: str | Path,
    test: str | Path,
    *,
    format: Format = "auto",
    name: str | None = None,
    **options: Any,
) -> Dataset:
    """Read a published split given as two files; ``Dataset.fixed_split`` holds (train, test).

    ``events`` is the union of both, so profiling and vocabularies see everything.
    """
    tr, rep_tr, ts_tr = read_events(train, format=format, **options)
    te, rep_te, ts_te = read_events(test, format=format, **options)
    if format == "sequences" or (not ts_tr and not ts_te and Path(str(test)).suffix != ".parquet"):
        # Sequence test files continue the train sequences: shift their order after the train part.
        offset = tr.groupby("user_id")["timestamp"].max()
        base = te["user_id"].map(offset)
        shift = (base - ORDER_ORIGIN).fillna(pd.Timedelta(0)) + pd.Timedelta(seconds=1)
        te = te.assign(timestamp=te["timestamp"] + shift.where(base.notna(), pd.Timedelta(0)))
    events = pd.concat([tr, te], ignore_index=True)
    dup = events["event_id"].duplicated()
    if dup.any():  # the same row in both files: keep the ids distinct, the rows both
        events.loc[dup, "event_id"] = events.loc[dup, "event_id"] + "-test"
        te = events.iloc[len(tr):].reset_index(drop=True)
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    return Dataset(
        name=name or Path(str(train)).stem,
        events=events.iloc[order].reset_index(drop=True),
        has_timestamps=ts_tr and ts_te,
        fixed_split=(tr, te),
        sources=[file_checksum(train), file_checksum(test)],
        meta={"format": format, "load_reports": [rep_tr.to_dict(), rep_te.to_dict()]},
    )


def load_data(
    events: Any = None,
    *,
    catalog: Any = None,
    users: Any = None,
    train: str | Path | None = None,
    test: str | Path | None = None,
    format: Format = "auto",
    mapping: Mapping[str, str] | None = None,
    catalog_mapping: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    quarantine_path: str | Path | None = None,
    event_type: str | None = None,
    timestamp_unit: str = "auto",
    sep: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a shop's own data into a :class:`Dataset`: events (or a train/test pair), catalog, users.

    Example:
        >>> import pandas as pd
        >>> from aisle.data import load_data
        >>> frame = pd.DataFrame({"user": ["u1", "u1"], "sku": ["a", "b"],
        ...                       "event_type": ["view", "purchase"],
        ...                       "ts": ["2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z"]})
        >>> ds = load_data(frame, mapping={"user_id": "user", "item_id": "sku", "timestamp": "ts"})
        >>> ds.n_events, ds.n_users, ds.n_items
        (2, 1, 2)
    """
    opts: dict[str, Any] = dict(mapping=mapping, on_error=on_error, quarantine_path=quarantine_path,
                                event_type=event_type, timestamp_unit=timestamp_unit, sep=sep)
    if train is not None or test is not None:
        if train is None or test is None or events is not None:
            raise ConfigError("a fixed split needs both --train and --test (and no separate events file)")
        ds = read_split(train, test, format=format, name=name, **opts)
    else:
        if events is None:
            raise ConfigError("no data given: pass an events file or frame, or --train and --test files")
        ev, report, has_ts = read_events(events, format=format, **opts)
        is_path = isinstance(events, (str, Path))
        ds = Dataset(
            name=name or (Path(str(events)).stem if is_path else "data"),
            events=ev,
            has_timestamps=has_ts,
            sources=[file_checksum(events)] if is_path else [],
            meta={"format": format, "load_reports": [report.to_dict()]},
        )
    if catalog is not None:
        cat_src = _existing(catalog) if isinstance(catalog, (str, Path)) else catalog
        frame = _read_table(cat_src) if isinstance(cat_src, Path) else cat_src
        ds.items, rep = conform_catalog(frame, source=str(catalog) if isinstance(catalog, (str, Path)) else "<catalog>",
                                        mapping=catalog_mapping, on_error=on_error,
                                        quarantine_path=_quarantine_path(str(catalog), quarantine_path))
        ds.meta["load_reports"].append(rep.to_dict())
        if isinstance(cat_src, Path):
            ds.sources.append(file_checksum(cat_src))
    if users is not None:
        usr_src = _existing(users) if isinstance(users, (str, Path)) else users
        frame = _read_table(usr_src) if isinstance(usr_src, Path) else usr_src
        ds.users, rep = conform_users(frame, source=str(users) if isinstance(users, (str, Path)) else "<users>",
                                      on_error=on_error,
                                      quarantine_path=_quarantine_path(str(users), quarantine_path))
        ds.meta["load_reports"].append(rep.to_dict())
    return ds


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    _, delim = _sniff(path)
    return pd.read_csv(path, sep=delim, dtype=str, keep_default_na=False, na_values=[""])


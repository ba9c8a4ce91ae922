"""Fetch a public dataset into the data home, verified file by file against the registry.

Only datasets with a public archive (GroupLens MovieLens 100K and ml-latest-small) can be
downloaded; for the others the error names their documented origin. The archive is streamed into
a temporary folder inside the data home, every file taken from it is checked against the
registry's size and sha256, and only then is the folder renamed into place, so an interrupted or
corrupt download never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from aisle.datasets._registry import (
    DatasetInfo,
    dataset_status,
    get_dataset_info,
    resolve_data_home,
)
from aisle.errors import ConfigError, DataError, ServiceError

__all__ = ["download_dataset"]

_CHUNK = 1 << 20
_SCHEMES = ("https", "http", "file")

Progress = Callable[[int, int | None], None]


def _fetch(url: str, dest: Path, *, timeout: float, progress: Progress | None) -> str:
    """Stream ``url`` into ``dest``; return the sha256 of what was written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceError(
            f"could not download {url}: {reason}. Check the network, or fetch the archive by hand "
            "and pass its location as url='file:///path/to/archive.zip'"
        ) from exc
    return digest.hexdigest()


def _extract(info: DatasetInfo, archive: Path, out_dir: Path) -> None:
    """Write the registered members of ``archive`` into ``out_dir``, verifying each one."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DataError(f"the download for {info.name!r} is not a zip archive ({exc})") from exc
    problems: list[str] = []
    with zf:
        names = set(zf.namelist())
        missing = [m for m, _ in info.download.members if m not in names]
        if missing:
            raise DataError(
                f"the archive for {info.name!r} lacks {', '.join(missing)}; it holds "
                f"{', '.join(sorted(names)[:10])}{' ...' if len(names) > 10 else ''}"
            )
        for member, rel in info.download.members:
            entry = info.file(rel)
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            size = 0
            limit = None if entry.bytes is None else entry.bytes + 1
            with zf.open(member) as src, target.open("wb") as dst:
                while chunk := src.read(_CHUNK if limit is None else min(_CHUNK, limit - size)):
                    dst.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if limit is not None and size >= limit:
                        break  # larger than registered: no need to read on
            if entry.bytes is not None and size != entry.bytes:
                problems.append(f"{rel}: {size}{'+' if size == limit else ''} bytes, expected {entry.bytes}")
            elif entry.sha256 is not None and digest.hexdigest() != entry.sha256:
                problems.append(f"{rel}: sha256 {digest.hexdigest()}, expected {entry.sha256}")
    if problems:
        raise DataError(
            f"the download for {info.name!r} does not match the registry (checksum mismatch), so "
            f"nothing was installed:\n  - " + "\n  - ".join(problems) + "\n"
            "The source may have changed or the download was corrupted; try again, or check the "
            f"origin: {info.download.origin}"
        )


def download_dataset(
    name: str | DatasetInfo,
    data_home: str | Path | None = None,
    *,
    force: bool = False,
    url: str | None = None,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download a public dataset into the data home, verifying every file's sha256.

    Args:
        name: a registered dataset name (or alias), or a :class:`DatasetInfo`.
        data_home: where to install it (default: ``AISLE_DATA_HOME``, else
            ``~/.cache/aisle/data``); the dataset lands in ``data_home/<folder>``.
        force: replace the folder even when it already holds the dataset.
        url: fetch the archive from here instead of the registered URL (a mirror, or a
            ``file://`` path to an archive downloaded by hand).
        timeout: seconds to wait for the server.
        progress: called as ``progress(bytes_done, bytes_total_or_None)`` while downloading.

    Returns:
        The dataset folder.

    Raises:
        ConfigError: the dataset has no public download (the message gives its origin), or the
            URL scheme is not http(s) or file.
        ServiceError: the archive cannot be fetched.
        DataError: the archive is not a zip, lacks a file, or a file's size or sha256 differs
            from the registry; nothing is installed then.
    """
    info = name if isinstance(name, DatasetInfo) else get_dataset_info(name)
    source = url or info.download.url
    if source is None:
        raise ConfigError(
            f"{info.name!r} cannot be downloaded by aisle: its origin publishes no stable archive. "
            f"Origin: {info.download.origin}. Obtain the files from there and place them in "
            f"<AISLE_DATA_HOME>/{info.folder}/"
        )
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme not in _SCHEMES:
        raise ConfigError(f"cannot download from {source!r}: the URL scheme must be one of {', '.join(_SCHEMES)}")
    home = resolve_data_home(data_home)
    target = home / info.folder
    if target.exists() and not force:
        status = dataset_status(info, home)
        if status.present:
            return target
        raise DataError(
            f"{target} exists but lacks {', '.join(status.missing)}; re-run with force=True "
            "(CLI: --force) to replace the folder"
        )
    home.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{info.folder}.download-", dir=home))
    try:
        archive = work / "archive.zip"
        digest = _fetch(source, archive, timeout=timeout, progress=progress)
        expected = info.download.archive_sha256
        if expected is not None and digest != expected:
            raise DataError(
                f"the archive for {info.name!r} from {source} has sha256 {digest}, expected {expected} "
                "(checksum mismatch); nothing was installed"
            )
        staged = work / info.folder
        staged.mkdir()
        _extract(info, archive, staged)
        if target.exists():
            target.rename(work / "previous")
        staged.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target

"""Downloads: verified, atomic, never over the network in tests (local file:// archives)."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from aisle.datasets import DatasetInfo, DownloadSource, FileInfo, download_dataset, get_dataset_info
from aisle.errors import ConfigError, DataError, ServiceError
from aisle.settings import get_settings

FILES = {"ratings.tsv": b"1\t10\t5\t881250949\n2\t10\t3\t881250950\n", "docs/README": b"a tiny dataset\n"}


def _info(url: str, files: dict[str, bytes] = FILES) -> DatasetInfo:
    return DatasetInfo(
        name="tiny",
        folder="tiny-folder",
        kind="ratings",
        description="a test dataset",
        license="none",
        files=tuple(FileInfo(p, len(b), hashlib.sha256(b).hexdigest()) for p, b in files.items()),
        download=DownloadSource(
            origin="tests", url=url, members=tuple((f"tiny/{p}", p) for p in files)
        ),
    )


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"tiny/{name}", data)
        zf.writestr("tiny/unlisted.pl", b"not copied")
    return path


def _leftovers(home: Path) -> list[str]:
    return [p.name for p in home.iterdir() if p.name.startswith(".")]


def test_download_extracts_verifies_and_installs(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "tiny.zip", FILES)
    home = tmp_path / "home"
    seen: list[tuple[int, int | None]] = []
    folder = download_dataset(_info(archive.as_uri()), home, progress=lambda d, t: seen.append((d, t)))
    assert folder == home / "tiny-folder"
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == set(FILES)
    for rel, data in FILES.items():
        assert (folder / rel).read_bytes() == data
    assert seen and seen[-1][0] == archive.stat().st_size
    assert _leftovers(home) == []


def test_present_dataset_is_not_fetched_again(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "tiny.zip", FILES)
    home = tmp_path / "home"
    download_dataset(_info(archive.as_uri()), home)
    missing_url = (tmp_path / "gone.zip").as_uri()
    assert download_dataset(_info(missing_url), home) == home / "tiny-folder"


def test_force_replaces_the_folder(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "tiny.zip", FILES)
    home = tmp_path / "home"
    folder = download_dataset(_info(archive.as_uri()), home)
    (folder / "stale.txt").write_text("old")
    (folder / "ratings.tsv").unlink()
    with pytest.raises(DataError, match=r"lacks ratings\.tsv; re-run with force=True"):
        download_dataset(_info(archive.as_uri()), home)
    download_dataset(_info(archive.as_uri()), home, force=True)
    assert not (folder / "stale.txt").exists() and (folder / "ratings.tsv").exists()
    assert _leftovers(home) == []


def test_checksum_mismatch_installs_nothing(tmp_path: Path) -> None:
    tampered = {**FILES, "ratings.tsv": FILES["ratings.tsv"].replace(b"\t5\t", b"\t4\t")}
    archive = _zip(tmp_path / "tiny.zip", tampered)
    home = tmp_path / "home"
    with pytest.raises(DataError, match="checksum mismatch") as err:
        download_dataset(_info(archive.as_uri()), home)
    assert "ratings.tsv: sha256" in str(err.value) and "nothing was installed" in str(err.value)
    assert not (home / "tiny-folder").exists()
    assert _leftovers(home) == []


def test_a_larger_file_is_refused(tmp_path: Path) -> None:
    bigger = {**FILES, "docs/README": FILES["docs/README"] * 1000}
    archive = _zip(tmp_path / "tiny.zip", bigger)
    with pytest.raises(DataError, match=r"docs/README: \d+\+ bytes, expected 15"):
        download_dataset(_info(archive.as_uri()), tmp_path / "home")


def test_archive_problems(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "tiny.zip", {"ratings.tsv": FILES["ratings.tsv"]})
    with pytest.raises(DataError, match="lacks tiny/docs/README"):
        download_dataset(_info(archive.as_uri()), tmp_path / "home")
    not_zip = tmp_path / "page.html"
    not_zip.write_text("<html>moved</html>")
    with pytest.raises(DataError, match="not a zip archive"):
        download_dataset(_info(not_zip.as_uri()), tmp_path / "home")
    with pytest.raises(ServiceError, match="could not download"):
        download_dataset(_info((tmp_path / "absent.zip").as_uri()), tmp_path / "home")
    with pytest.raises(ConfigError, match="URL scheme"):
        download_dataset(_info("ftp://example.org/tiny.zip"), tmp_path / "home")
    assert not (tmp_path / "home" / "tiny-folder").exists()


def test_registered_download_sources(tmp_path: Path) -> None:
    ml = get_dataset_info("movielens-100k")
    assert ml.download.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert ("ml-100k/README", "README.grouplens.txt") in ml.download.members
    small = get_dataset_info("movielens-latest-small")
    assert small.download.url == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    with pytest.raises(ConfigError, match="cannot be downloaded by aisle") as err:
        download_dataset("obd", tmp_path)
    assert "research.zozo.com" in str(err.value)


def test_url_override_uses_the_registry_checksums(tmp_path: Path) -> None:
    """A mirror (url=...) is still checked against the registered files."""
    info = replace(get_dataset_info("movielens-100k"), files=_info("x").files,
                   download=replace(_info("x").download, url=None))
    with pytest.raises(ConfigError, match="cannot be downloaded"):
        download_dataset(info, tmp_path)
    archive = _zip(tmp_path / "tiny.zip", FILES)
    assert download_dataset(info, tmp_path / "home", url=archive.as_uri()).name == "movielens-100k"


@pytest.mark.realdata
def test_movielens_100k_from_a_local_copy_of_the_grouplens_zip(tmp_path: Path) -> None:
    """The real registry entry: a zip laid out like GroupLens's, built from the shared files."""
    info = get_dataset_info("movielens-100k")
    source = get_settings().data_home / info.folder
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for member, rel in info.download.members:
            zf.write(source / rel, member)
    folder = download_dataset("movielens-100k", tmp_path / "home", url=archive.as_uri())
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.path for f in info.files)

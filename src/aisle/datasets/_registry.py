"""The registry of public datasets aisle loads by name: files, checksums, licenses, sources.

Each :class:`DatasetInfo` records what the shared data READMEs publish for one dataset: the
folder under ``AISLE_DATA_HOME``, every file with its size and sha256, the license as stated by
the origin and where the data can be obtained. :func:`list_datasets` reports which datasets are
present under a data home and, on request, whether every file still matches its checksum.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aisle.data import SourceFile, file_checksum
from aisle.errors import ConfigError, DatasetNotFoundError, DataWarning
from aisle.settings import get_settings

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetKind",
    "DatasetStatus",
    "DownloadSource",
    "FileInfo",
    "FileStatus",
    "checked_source",
    "dataset_folder",
    "dataset_status",
    "get_dataset_info",
    "list_datasets",
    "resolve_data_home",
]

DatasetKind = Literal["ratings", "sequences", "sessions", "bandit"]


@dataclass(frozen=True)
class FileInfo:
    """One file of a dataset as published.

    Attributes:
        path: the path relative to the dataset folder (``/``-separated).
        bytes: the expected size in bytes.
        sha256: the expected sha256 (hex), or ``None`` where the README publishes none.
    """

    path: str
    bytes: int | None
    sha256: str | None


@dataclass(frozen=True)
class DownloadSource:
    """Where a dataset comes from, and how ``download_dataset`` fetches it when it can.

    Attributes:
        origin: the documented origin (a repository, package or web page), always given.
        url: a public archive (zip) that holds the files, or ``None`` when aisle cannot download
            the dataset itself.
        members: ``(archive member, file path)`` pairs: which member of the archive becomes which
            file of the dataset folder.
        archive_sha256: the sha256 of the archive itself, when known.
    """

    origin: str
    url: str | None = None
    members: tuple[tuple[str, str], ...] = ()
    archive_sha256: str | None = None

    @property
    def supported(self) -> bool:
        """Whether :func:`~aisle.datasets.download_dataset` can fetch this dataset."""
        return self.url is not None


@dataclass(frozen=True)
class DatasetInfo:
    """A public dataset known by name.

    Attributes:
        name: the canonical name (``"movielens-100k"``).
        folder: the folder under the data home that holds the files.
        kind: ``ratings``, ``sequences``, ``sessions`` or ``bandit``.
        description: one line on what the data is.
        license: the license as stated by the origin, in short.
        files: every file with its expected size and sha256.
        download: where the data comes from (and the archive to fetch, where one is public).
        aliases: other names accepted by :func:`get_dataset_info` (the folder name among them
            when the folder holds only this dataset).
        splits: the names accepted by ``load_dataset(name, split=...)``.
        options: the keyword options ``load_dataset`` accepts for this dataset, with their
            allowed values.
    """

    name: str
    folder: str
    kind: DatasetKind
    description: str
    license: str
    files: tuple[FileInfo, ...]
    download: DownloadSource
    aliases: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def total_bytes(self) -> int:
        """The summed expected size of the files."""
        return sum(f.bytes or 0 for f in self.files)

    def file(self, path: str) -> FileInfo:
        """The registry entry of one file.

        Args:
            path: the path relative to the dataset folder.

        Returns:
            The file's entry.

        Raises:
            ConfigError: the dataset has no such file.
        """
        for f in self.files:
            if f.path == path:
                return f
        raise ConfigError(f"dataset {self.name!r} has no file {path!r}")


@dataclass(frozen=True)
class FileStatus:
    """What is on disk for one registered file.

    Attributes:
        path: the file's absolute path.
        present: whether it exists.
        bytes: its size on disk (0 when absent).
        size_ok: whether the size matches the registry (``None`` when absent or unknown).
        sha256_ok: whether the sha256 matches (``None`` when not verified, absent or unknown).
        sha256: the computed sha256 when verified.
    """

    path: Path
    present: bool
    bytes: int
    size_ok: bool | None
    sha256_ok: bool | None
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetStatus:
    """Whether one registered dataset is present under a data home, and intact.

    Attributes:
        name: the canonical dataset name.
        kind: ``ratings``, ``sequences``, ``sessions`` or ``bandit``.
        folder: the folder looked in.
        present: every registered file exists.
        bytes_on_disk: the summed size of the registered files that exist.
        missing: the registered files (relative paths) that do not exist.
        verified: with ``verify=True``, whether every present file matches its size and sha256
            (``None`` without verification or when files are missing).
        mismatched: the present files whose size or sha256 differs from the registry.
        files: the per-file details.
    """

    name: str
    kind: DatasetKind
    folder: Path
    present: bool
    bytes_on_disk: int
    missing: tuple[str, ...]
    verified: bool | None
    mismatched: tuple[str, ...]
    files: tuple[FileStatus, ...]

    @property
    def checksums(self) -> str:
        """One word on the checksums: ``ok``, ``mismatch``, ``incomplete`` or ``not checked``."""
        if self.mismatched:
            return "mismatch"
        if self.missing and self.bytes_on_disk:
            return "incomplete"
        return "ok" if self.verified else "not checked"

    def to_dict(self) -> dict[str, Any]:
        """The status as plain JSON-ready values (for ``aisle datasets list --json``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "folder": str(self.folder),
            "present": self.present,
            "bytes": self.bytes_on_disk,
            "missing": list(self.missing),
            "verified": self.verified,
            "mismatched": list(self.mismatched),
            "checksums": self.checksums,
        }


def _f(path: str, size: int | None, sha256: str | None) -> FileInfo:
    return FileInfo(path, size, sha256)


_GROUPLENS = (
    "GroupLens usage license (README.grouplens.txt): research use only, no commercial use without "
    "permission, cite Harper & Konstan 2015, redistribution only under the same terms."
)

_ML100K_FILES = (
    _f("README.grouplens.txt", 6_750, "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52"),
    _f("u.data", 1_979_173, "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    _f("u.genre", 202, "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
    _f("u.info", 36, "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b"),
    _f("u.item", 236_344, "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    _f("u.occupation", 193, "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
    _f("u.user", 22_628, "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
    _f("u1.base", 1_586_544, "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a"),
    _f("u1.test", 392_629, "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950"),
    _f("u2.base", 1_583_948, "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e"),
    _f("u2.test", 395_225, "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3"),
    _f("u3.base", 1_582_546, "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d"),
    _f("u3.test", 396_627, "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d"),
    _f("u4.base", 1_581_878, "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca"),
    _f("u4.test", 397_295, "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9"),
    _f("u5.base", 1_581_776, "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485"),
    _f("u5.test", 397_397, "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634"),
    _f("ua.base", 1_792_501, "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2"),
    _f("ua.test", 186_672, "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42"),
    _f("ub.base", 1_792_476, "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881"),
    _f("ub.test", 186_697, "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da"),
)

_MLSMALL_FILES = (
    _f("README.grouplens.txt", 8_344, "e165937702ae1fac9237b6bd377f03d027f7ef97175d4a04a203e8b12d5516ea"),
    _f("links.csv", 197_979, "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31"),
    _f("movies.csv", 494_431, "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07"),
    _f("ratings.csv", 2_483_723, "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"),
    _f("tags.csv", 118_660, "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d"),
)

_OBD_FILES = (
    _f("bts/all/all.csv", 5_084_456, "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106"),
    _f("bts/all/item_context.csv", 10_041, "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153"),
    _f("bts/men/item_context.csv", 4_287, "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d"),
    _f("bts/men/men.csv", 3_240_432, "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527"),
    _f("bts/women/item_context.csv", 5_792, "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4"),
    _f("bts/women/women.csv", 3_722_697, "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8"),
    _f("random/all/all.csv", 5_039_451, "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1"),
    _f("random/all/item_context.csv", 10_041, "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358"),
    _f("random/men/item_context.csv", 4_287, "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09"),
    _f("random/men/men.csv", 3_336_811, "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb"),
    _f("random/women/item_context.csv", 5_792, "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147"),
    _f("random/women/women.csv", 3_817_771, "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34"),
    # The README documents prior_bts.yaml but publishes no checksum for it.
    _f("prior_bts.yaml", None, None),
)

_S3REC_LICENSE = (
    "None stated (the S3-Rec repo has no LICENSE file); the underlying data is the Amazon review "
    "data of McAuley et al. (Beauty) and the Last.fm HetRec-2011 data (LastFM). Research use."
)
_S3REC_ORIGIN = "GitHub aHuiWang/CIKM2020-S3Rec, data/ (commit 49a890dcb516c9ed3126564495234ea74d5cd566)"



def _members(prefix: str, readme: str, files: tuple[FileInfo, ...]) -> tuple[tuple[str, str], ...]:
    """Archive member -> file: the GroupLens zips hold the files in one folder, README renamed."""
    return tuple(
        (f"{prefix}/{readme if f.path == 'README.grouplens.txt' else f.path}", f.path) for f in files
    )


_ML100K_MEMBERS = _members("ml-100k", "README", _ML100K_FILES)
_MLSMALL_MEMBERS = _members("ml-latest-small", "README.txt", _MLSMALL_FILES)

_ALL: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        name="movielens-100k",
        folder="movielens-100k",
        kind="ratings",
        description="GroupLens MovieLens 100K: 100,000 ratings (1-5) by 943 users on 1,682 movies, "
        "1997-98, with titles, genres, user demographics and the official u1-u5/ua/ub splits.",
        license=_GROUPLENS,
        files=_ML100K_FILES,
        download=DownloadSource(
            origin="GroupLens Research, https://grouplens.org/datasets/movielens/100k/",
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            members=_ML100K_MEMBERS,
        ),
        aliases=("ml-100k", "ml100k", "movielens100k"),
        splits=("u1", "u2", "u3", "u4", "u5", "ua", "ub"),
    ),
    DatasetInfo(
        name="movielens-latest-small",
        folder="movielens-latest-small",
        kind="ratings",
        description="GroupLens ml-latest-small (2018-09-26): 100,836 ratings (0.5-5) by 610 users "
        "on 9,724 movies, with titles, genres, free-text tags and IMDb/TMDb links.",
        license=_GROUPLENS + " GroupLens calls it a development dataset, not for shared research results.",
        files=_MLSMALL_FILES,
        download=DownloadSource(
            origin="GroupLens Research, https://grouplens.org/datasets/movielens/latest/",
            url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
            members=_MLSMALL_MEMBERS,
        ),
        aliases=("ml-latest-small", "movielens-small"),
    ),
    DatasetInfo(
        name="s3rec-beauty",
        folder="seq-s3rec",
        kind="sequences",
        description="Amazon Beauty in the S3-Rec format: 22,363 users' time-ordered sequences over "
        "12,101 items (198,502 interactions, 5-core), with item attributes (categories, brand).",
        license=_S3REC_LICENSE,
        files=(
            _f("Beauty.txt", 1_090_094, "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
            _f("Beauty_item2attributes.json", 305_674,
               "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4"),
        ),
        download=DownloadSource(origin=_S3REC_ORIGIN),
        aliases=("beauty", "amazon-beauty"),
    ),
    DatasetInfo(
        name="s3rec-lastfm",
        folder="seq-s3rec",
        kind="sequences",
        description="Last.fm (HetRec 2011) in the S3-Rec format: 1,090 users' time-ordered "
        "sequences over 3,646 items (52,551 interactions), with tag attributes and 99 sampled "
        "negatives per user.",
        license=_S3REC_LICENSE,
        files=(
            _f("LastFM.txt", 239_312, "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802"),
            _f("LastFM_item2attributes.json", 524_368,
               "a4ccd678dc9ff6d43fe5073f491db5c9b02eb98dfa4f8c0382913a784be217ef"),
            _f("LastFM_sample.txt", 511_746, "60194cc2e4fd1aa8b5dc8872e1f3af9c6abd09c39d478d3df9337cb97e6e2f0d"),
        ),
        download=DownloadSource(origin=_S3REC_ORIGIN),
        aliases=("lastfm",),
    ),
    DatasetInfo(
        name="yoochoose-sample",
        folder="yoochoose-clicks-100k-sample",
        kind="sessions",
        description="YooChoose (RecSys Challenge 2015) click sessions, 100k-event sample from "
        "session-rec, preprocessed and split by time (train_full/test and train_tr/train_valid).",
        license="None stated (session-rec has no LICENSE file); the RecSys Challenge 2015 "
        "organisers' terms apply to the data. Research use.",
        files=(
            _f("yoochoose-clicks-100k_test.txt", 414_350,
               "380410c606403531019e1ec0b4d192ef90492d594b9b5a91633b860618dd7136"),
            _f("yoochoose-clicks-100k_train_full.txt", 2_146_008,
               "9842c90358298ee784fcf0c9dccb2eeb283ab04368e53bdeee896747f4c03e1e"),
            _f("yoochoose-clicks-100k_train_tr.txt", 1_626_198,
               "fb4c6381c8e5bc4de51553cb1ed210fb4016c87d2425d58344cd6b19e81c133a"),
            _f("yoochoose-clicks-100k_train_valid.txt", 505_021,
               "14fca72e690c19b0da391059b7cf2c1b611cddbd1248ce93578a039ddb26ea69"),
        ),
        download=DownloadSource(
            origin="GitHub rn5l/session-rec, data/rsc15/prepared/yoochoose-clicks-100k_*.txt "
            "(commit 5dcd583cbd8d44703a5248b9a308945f24b91390)"
        ),
        aliases=("yoochoose", "yoochoose-clicks-100k-sample", "rsc15-sample"),
        splits=("test", "tr-valid"),
    ),
    DatasetInfo(
        name="diginetica-sample",
        folder="diginetica-sample-srgnn",
        kind="sessions",
        description="DIGINETICA (CIKM Cup 2016) item-view sessions, the sample shipped with SR-GNN: "
        "12,391 views in 2,986 mostly anonymous sessions over 7,139 items.",
        license="None stated (SR-GNN has no LICENSE file); the CIKM Cup 2016 terms apply to the "
        "data. Research use.",
        files=(
            _f("sample_train-item-views.csv", 395_354,
               "98da96e05c87ef12b739e4bfd9bc7b4864106ee77371f1db9eb4413e3f78d37e"),
        ),
        download=DownloadSource(
            origin="GitHub CRIPAC-DIG/SR-GNN, datasets/sample_train-item-views.csv "
            "(commit e21cfa431f74c25ae6e4ae9261deefe11d1cb488)"
        ),
        aliases=("diginetica", "diginetica-sample-srgnn"),
    ),
    DatasetInfo(
        name="obd",
        folder="open-bandit-dataset-small",
        kind="bandit",
        description="Open Bandit Dataset (ZOZOTOWN) small sample: 10,000 logged impressions per "
        "campaign (all/men/women) and logging policy (uniform random, Bernoulli TS), with clicks "
        "and the true propensities.",
        license="obp package and repo: Apache-2.0; no separate data license stated; released for "
        "research uses (cite Saito et al., arXiv:2008.07146).",
        files=_OBD_FILES,
        download=DownloadSource(
            origin="PyPI package obp (0.4.1 wheel, package data obp/dataset/obd/); also GitHub "
            "st-tech/zr-obp obd/. The full data is at research.zozo.com/data.html"
        ),
        aliases=("open-bandit-dataset", "open-bandit-dataset-small", "obd-small"),
        options=(("campaign", ("all", "men", "women")), ("policy", ("random", "bts"))),
    ),
)

#: The registered datasets by canonical name.
DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _ALL}

#: Folders that hold more than one dataset: the folder name is ambiguous as an alias.
_SHARED_FOLDERS: dict[str, tuple[str, ...]] = {"seq-s3rec": ("s3rec-beauty", "s3rec-lastfm")}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for info in DATASETS.values():
        for alias in (info.name, info.folder, *info.aliases):
            if _normalize(alias) not in _SHARED_FOLDERS:
                table.setdefault(_normalize(alias), info.name)
    return table


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry of a dataset, by canonical name, folder name or alias.

    Args:
        name: e.g. ``"movielens-100k"``, ``"ml-100k"`` or ``"open-bandit-dataset-small"``
            (case and ``_``/``-`` do not matter).

    Returns:
        The dataset's :class:`DatasetInfo`.

    Raises:
        ConfigError: the name is unknown (the message lists the valid names and the closest
            match) or names a folder that holds several datasets.
    """
    key = _normalize(name)
    if key in _SHARED_FOLDERS:
        raise ConfigError(
            f"{name!r} is a folder that holds several datasets; "
            f"load one of them by name: {', '.join(_SHARED_FOLDERS[key])}"
        )
    table = _aliases()
    if key in table:
        return DATASETS[table[key]]
    close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.5)
    hint = f" Did you mean {table[close[0]]!r}?" if close else ""
    raise ConfigError(
        f"unknown dataset {name!r}.{hint} Valid names: {', '.join(DATASETS)}"
    )


def resolve_data_home(data_home: str | Path | None = None) -> Path:
    """The data home: the argument, else ``AISLE_DATA_HOME``, else ``~/.cache/aisle/data``.

    Args:
        data_home: an explicit folder, or ``None`` to read the settings.

    Returns:
        The folder (it may not exist).
    """
    return get_settings(data_home=data_home).data_home


def _env_note() -> str:
    value = os.environ.get("AISLE_DATA_HOME")
    return f"AISLE_DATA_HOME={value}" if value else "AISLE_DATA_HOME is not set"


def dataset_folder(
    info: DatasetInfo, data_home: str | Path | None = None, *, require: Iterable[str] = ()
) -> Path:
    """The folder of a dataset under the data home, checked to exist with the files needed.

    Args:
        info: the dataset's registry entry.
        data_home: the data home (default: the settings).
        require: files (relative to the folder) that must exist.

    Returns:
        The dataset folder.

    Raises:
        DatasetNotFoundError: the folder or a required file is missing; the message names the
            folder looked in, ``AISLE_DATA_HOME`` and how to fix it.
    """
    home = resolve_data_home(data_home)
    folder = home / info.folder
    if info.download.supported:
        fix = (
            f"download it with `aisle datasets download {info.name}` "
            f"(Python: aisle.datasets.download_dataset({info.name!r})), or set AISLE_DATA_HOME "
            f"to a folder that holds {info.folder}/"
        )
    else:
        fix = (
            f"set AISLE_DATA_HOME to a folder that holds {info.folder}/, or place the files there "
            f"yourself (aisle cannot download this dataset; its origin: {info.download.origin})"
        )
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"dataset {info.name!r} not found: the folder {folder} does not exist "
            f"(data home {home}; {_env_note()}). To fix: {fix}"
        )
    missing = [p for p in require if not (folder / p).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {info.name!r} is incomplete: {', '.join(missing)} missing in {folder} "
            f"({_env_note()}). To fix: {fix}"
        )
    return folder


def checked_source(info: DatasetInfo, folder: Path, path: str) -> SourceFile:
    """Size and sha256 of a dataset file for lineage, warning when it differs from the registry.

    Args:
        info: the dataset's registry entry.
        folder: the dataset folder.
        path: the file, relative to the folder.

    Returns:
        The file's :class:`~aisle.data.SourceFile`.

    Warns:
        DataWarning: the file's sha256 is not the registered one (published numbers may then
            not apply).
    """
    source = file_checksum(folder / path)
    expected = next((f.sha256 for f in info.files if f.path == path), None)
    if expected is not None and source.sha256 != expected:
        warnings.warn(
            f"{source.path} differs from the registered {info.name} file (sha256 {source.sha256}, "
            f"expected {expected}); counts and published numbers may not apply. "
            f"Check it with aisle.datasets.list_datasets(verify=True)",
            DataWarning,
            stacklevel=3,
        )
    return source


def _file_status(folder: Path, entry: FileInfo, verify: bool) -> FileStatus:
    path = folder / entry.path
    if not path.is_file():
        return FileStatus(path=path, present=False, bytes=0, size_ok=None, sha256_ok=None)
    size = path.stat().st_size
    size_ok = None if entry.bytes is None else size == entry.bytes
    sha_ok: bool | None = None
    digest: str | None = None
    if verify:
        digest = file_checksum(path).sha256
        sha_ok = None if entry.sha256 is None else digest == entry.sha256
    return FileStatus(path=path, present=True, bytes=size, size_ok=size_ok, sha256_ok=sha_ok, sha256=digest)


def dataset_status(
    info: DatasetInfo, data_home: str | Path | None = None, *, verify: bool = False
) -> DatasetStatus:
    """Whether one dataset is present under the data home, and (with ``verify``) intact.

    Args:
        info: the dataset's registry entry.
        data_home: the data home (default: the settings).
        verify: compute every present file's sha256 and compare it with the registry.

    Returns:
        The dataset's :class:`DatasetStatus`.
    """
    folder = resolve_data_home(data_home) / info.folder
    files = tuple(_file_status(folder, f, verify) for f in info.files)
    missing = tuple(f.path for f, s in zip(info.files, files, strict=True) if not s.present)
    mismatched = tuple(
        f.path
        for f, s in zip(info.files, files, strict=True)
        if s.present and (s.size_ok is False or s.sha256_ok is False)
    )
    verified = (not mismatched) if verify and not missing else None
    return DatasetStatus(
        name=info.name,
        kind=info.kind,
        folder=folder,
        present=not missing,
        bytes_on_disk=sum(s.bytes for s in files),
        missing=missing,
        verified=verified,
        mismatched=mismatched,
        files=files,
    )


def list_datasets(data_home: str | Path | None = None, *, verify: bool = False) -> list[DatasetStatus]:
    """Every registered dataset with whether it is present under the data home.

    Args:
        data_home: the data home (default: ``AISLE_DATA_HOME`` or ``~/.cache/aisle/data``).
        verify: also compute each present file's sha256 and compare it with the registry
            (reads every file: about 60 MB for all datasets).

    Returns:
        One :class:`DatasetStatus` per dataset, in registry order.

    Example:
        >>> [s.name for s in list_datasets("/nonexistent")][:2]
        ['movielens-100k', 'movielens-latest-small']
    """
    return [dataset_status(info, data_home, verify=verify) for info in DATASETS.values()]

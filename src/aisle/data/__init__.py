"""The data stage: the canonical event log, validation, readers, implicit feedback and splits."""

from aisle.data._conform import (
    EVENT_TYPE_ALIASES,
    LoadReport,
    conform_catalog,
    conform_events,
    conform_users,
    to_pandas,
)
from aisle.data._dataset import Dataset, SourceFile
from aisle.data._feedback import (
    DEFAULT_WEIGHTS,
    FeedbackConfig,
    Interactions,
    build_interactions,
    fold_in,
)
from aisle.data._io import FORMATS, file_checksum, load_data, read_events, read_split
from aisle.data._schema import (
    CATALOG_COLUMNS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    USER_COLUMNS,
    empty_events,
)
from aisle.data._splits import (
    SPLITS,
    Split,
    fixed_split,
    leave_last_k,
    random_split,
    split_by_name,
    temporal_split,
    user_holdout,
)
from aisle.data._vocab import Vocabulary

__all__ = [
    "CATALOG_COLUMNS",
    "DEFAULT_WEIGHTS",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "EVENT_TYPE_ALIASES",
    "FORMATS",
    "SPLITS",
    "USER_COLUMNS",
    "Dataset",
    "FeedbackConfig",
    "Interactions",
    "LoadReport",
    "SourceFile",
    "Split",
    "Vocabulary",
    "build_interactions",
    "conform_catalog",
    "conform_events",
    "conform_users",
    "empty_events",
    "file_checksum",
    "fixed_split",
    "fold_in",
    "leave_last_k",
    "load_data",
    "random_split",
    "read_events",
    "read_split",
    "split_by_name",
    "temporal_split",
    "to_pandas",
    "user_holdout",
]

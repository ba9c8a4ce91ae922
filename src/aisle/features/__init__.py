"""The feature stage: feature views, windowed aggregates, encoders, offline/online stores, stream.

* Definitions: :class:`Entity` (``USER``, ``ITEM``, ``USER_CATEGORY``, ``SESSION``),
  :class:`FeatureView` with :class:`Count`, :class:`Sum`, :class:`Mean`, :class:`Min`,
  :class:`Max`, :class:`Rate` (smoothed toward the category prior), :class:`Recency` over
  sliding :class:`Window` s, a :class:`Missing` policy per feature; :class:`EmbeddingView`;
  a :class:`FeatureRepository` and a versioned registry (SQLite or PostgreSQL).
* Offline: :class:`OfflineStore` (Parquet + DuckDB) with point-in-time training sets.
* Online: :class:`OnlineStore` over SQLite (default) or Redis; one round trip per read, async.
* Stream: :class:`StreamProcessor` fed by Redis Streams (:class:`RedisStreamSource`) or HTTP
  (:func:`create_ingest_app`), at-least-once with idempotent updates by ``event_id``; the same
  aggregation code (:func:`replay`) materializes history in batch.
* Skew: :func:`validate_skew` compares online values with the offline recomputation.
* Encoders: :class:`TargetEncoder` (out-of-fold), :func:`hash_ids`, :func:`learn_item_embeddings`.

Example:
    >>> import tempfile
    >>> from aisle.features import FeatureStore, default_repository
    >>> with tempfile.TemporaryDirectory() as workspace:
    ...     store = FeatureStore(workspace=workspace)
    ...     [r.status for r in store.apply(default_repository())]
    ['created', 'created', 'created', 'created']
"""

from aisle.features._aggregates import EventBatch, Plan, TileTable, compile_plan, replay
from aisle.features._definitions import (
    ITEM,
    SESSION,
    USER,
    USER_CATEGORY,
    Count,
    EmbeddingView,
    Entity,
    EventSource,
    FeatureRepository,
    FeatureView,
    Max,
    Mean,
    Min,
    Missing,
    Rate,
    Recency,
    Sum,
    Window,
    default_repository,
    view_fingerprint,
)
from aisle.features._encoders import (
    TargetEncoder,
    TargetEncoderConfig,
    embeddings_from_model,
    hash_ids,
    learn_item_embeddings,
    naive_target_encoding,
)
from aisle.features._http import create_ingest_app, processor_sink, redis_stream_sink
from aisle.features._materialize import MaterializeResult, materialize
from aisle.features._offline import IngestReport, OfflineStore
from aisle.features._online import (
    FeatureFrame,
    OnlineBackend,
    OnlineStore,
    RedisOnline,
    RedisOnlineConfig,
    SQLiteOnline,
    SQLiteOnlineConfig,
)
from aisle.features._registry import (
    ApplyResult,
    FeatureRegistry,
    PostgresRegistry,
    PostgresRegistryConfig,
    RegistryEntry,
    SQLiteRegistry,
    SQLiteRegistryConfig,
)
from aisle.features._skew import FeatureSkew, SkewError, SkewReport, validate_skew
from aisle.features._store import (
    FeatureStore,
    FeatureStoreConfig,
    MemoryStreamConfig,
    ParquetOfflineConfig,
    RedisStreamConfig,
)
from aisle.features._stream import (
    BatchResult,
    MemorySource,
    RedisStreamSource,
    RunSummary,
    StreamProcessor,
    events_to_columns,
    publish_events,
)

__all__ = [
    "ITEM",
    "SESSION",
    "USER",
    "USER_CATEGORY",
    "ApplyResult",
    "BatchResult",
    "Count",
    "EmbeddingView",
    "Entity",
    "EventBatch",
    "EventSource",
    "FeatureFrame",
    "FeatureRegistry",
    "FeatureRepository",
    "FeatureSkew",
    "FeatureStore",
    "FeatureStoreConfig",
    "FeatureView",
    "IngestReport",
    "MaterializeResult",
    "Max",
    "Mean",
    "MemorySource",
    "MemoryStreamConfig",
    "Min",
    "Missing",
    "OfflineStore",
    "OnlineBackend",
    "OnlineStore",
    "ParquetOfflineConfig",
    "Plan",
    "PostgresRegistry",
    "PostgresRegistryConfig",
    "Rate",
    "Recency",
    "RedisOnline",
    "RedisOnlineConfig",
    "RedisStreamConfig",
    "RedisStreamSource",
    "RegistryEntry",
    "RunSummary",
    "SQLiteOnline",
    "SQLiteOnlineConfig",
    "SQLiteRegistry",
    "SQLiteRegistryConfig",
    "SkewError",
    "SkewReport",
    "StreamProcessor",
    "Sum",
    "TargetEncoder",
    "TargetEncoderConfig",
    "TileTable",
    "Window",
    "compile_plan",
    "create_ingest_app",
    "default_repository",
    "embeddings_from_model",
    "events_to_columns",
    "hash_ids",
    "learn_item_embeddings",
    "materialize",
    "naive_target_encoding",
    "processor_sink",
    "publish_events",
    "redis_stream_sink",
    "replay",
    "validate_skew",
    "view_fingerprint",
]

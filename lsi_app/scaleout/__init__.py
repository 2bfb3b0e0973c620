"""Scale-out engines: feature extraction and LSI scoring on a Ray cluster.

Install the extra with ``pip install 'lsi-app[ray]'``. Importing this
package does not import Ray; the functions that need it raise ImportError
with that command when it is missing.
"""

from lsi_app.scaleout.cluster import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_SHARD_SIZE,
    LOOPBACK_VARIABLE,
    RAY_MISSING_MESSAGE,
    RayOptions,
    Shard,
    ShardFailedError,
    import_ray,
    plan_shards,
    ray_session,
)
from lsi_app.scaleout.partitioned import DEFAULT_ROWS_PER_FILE, read_parquet_partitioned, write_parquet_partitioned
from lsi_app.scaleout.ray_engine import discard_feature_shards, extract_features_ray, score_ray

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_ROWS_PER_FILE",
    "DEFAULT_SHARD_SIZE",
    "LOOPBACK_VARIABLE",
    "RAY_MISSING_MESSAGE",
    "RayOptions",
    "Shard",
    "ShardFailedError",
    "discard_feature_shards",
    "extract_features_ray",
    "import_ray",
    "plan_shards",
    "ray_session",
    "read_parquet_partitioned",
    "score_ray",
    "write_parquet_partitioned",
]

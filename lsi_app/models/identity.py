"""Precomputed feature vectors passed through unchanged."""

from __future__ import annotations

import numpy as np
import torch

from lsi_app.data.samples import ItemKind, SampleSet, fingerprint_of
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor
from lsi_app.progress import ProgressCallback, ignore_progress


class IdentityExtractor(FeatureExtractor):
    """Use the vectors of a vector sample set as the features, as float32, keeping every row.

    Rows with NaN or infinite values are kept here; the pipeline drops them
    after extraction like any other non-finite features.
    """

    def __init__(self) -> None:
        self.source = "identity"

    def fingerprint(self) -> str:
        return fingerprint_of("identity", "float32")

    def extract(
        self,
        samples: SampleSet,
        *,
        device: torch.device,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressCallback = ignore_progress,
    ) -> Extraction:
        if samples.kind is not ItemKind.VECTOR:
            raise ValueError(
                f"model source identity passes feature vectors through, but dataset {samples.name!r} has "
                f"{samples.kind.value} items; use --model auto"
            )
        n_items = len(samples)
        vectors = getattr(samples.reader, "vectors", None)
        if vectors is None and n_items == 0:
            vectors = np.empty((0, 0), dtype=np.float32)
        elif vectors is None:
            vectors = np.stack([np.asarray(samples.reader.load(index)) for index in range(n_items)])
        features = np.asarray(vectors, dtype=np.float32).reshape(n_items, -1)
        progress(1.0, f"Reading feature vectors: {n_items}/{n_items}")
        return Extraction(features=features, kept=np.arange(n_items, dtype=np.int64))

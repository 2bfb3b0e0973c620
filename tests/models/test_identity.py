from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from lsi_app.data.samples import ItemKind, SampleSet, TextItems, VectorItems
from lsi_app.models.identity import IdentityExtractor

CPU = torch.device("cpu")


@dataclass(frozen=True)
class RowReader:
    """A vector reader without a ``vectors`` array, loading one row at a time."""

    rows: tuple
    kind: ItemKind = field(default=ItemKind.VECTOR, init=False)

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> np.ndarray:
        return np.asarray(self.rows[index])


def vector_samples(reader) -> SampleSet:
    return SampleSet("vectors", np.array([f"row {i}" for i in range(len(reader))]), None, (), reader, "fp")


def test_identity_keeps_vectors_as_float32():
    vectors = np.arange(12, dtype=np.float64).reshape(4, 3)
    vectors[2, 1] = np.nan

    result = IdentityExtractor().extract(vector_samples(VectorItems(vectors)), device=CPU)

    assert result.features.dtype == np.float32
    np.testing.assert_array_equal(result.features, vectors.astype(np.float32))
    assert result.kept.tolist() == [0, 1, 2, 3]
    assert result.skipped == []


def test_identity_loads_rows_without_array():
    result = IdentityExtractor().extract(vector_samples(RowReader(((1, 2), (3, 4), (5, 6)))), device=CPU)

    np.testing.assert_array_equal(result.features, [[1, 2], [3, 4], [5, 6]])


def test_identity_reports_progress():
    reports = []

    IdentityExtractor().extract(
        vector_samples(VectorItems(np.zeros((5, 2)))), device=CPU, progress=lambda f, m: reports.append((f, m))
    )

    assert reports == [(1.0, "Reading feature vectors: 5/5")]


def test_identity_rejects_text():
    texts = SampleSet("texts", np.array(["a"]), None, (), TextItems(("hello",)), "fp")

    with pytest.raises(ValueError, match="dataset 'texts' has text items; use --model auto"):
        IdentityExtractor().extract(texts, device=CPU)


def test_identity_fingerprint_stable():
    assert IdentityExtractor().fingerprint() == IdentityExtractor().fingerprint()

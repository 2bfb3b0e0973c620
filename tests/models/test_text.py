import socket
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from lsi_app.data.samples import ItemError, SampleSet, TextItems, fingerprint_of
from lsi_app.models.text import EMBEDDING_DIM, MiniLMExtractor

CPU = torch.device("cpu")

TEXTS = (
    "A cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly revenue grew by eight percent.",
)


@dataclass(frozen=True)
class FailingTexts(TextItems):
    """Texts whose items at ``failing`` raise ItemError, like undecodable rows."""

    failing: frozenset = field(default_factory=frozenset)

    def load(self, index: int) -> str:
        if index in self.failing:
            raise ItemError("invalid UTF-8 in row")
        return super().load(index)


def text_samples(texts, failing=()) -> SampleSet:
    return SampleSet(
        name="texts",
        sample_ids=np.array([f"row {i}" for i in range(len(texts))]),
        labels=None,
        class_names=(),
        reader=FailingTexts(tuple(texts), failing=frozenset(failing)),
        fingerprint=fingerprint_of(*texts),
    )


@pytest.fixture(scope="module")
def offline_extraction():
    """Load the model and embed TEXTS plus one failing row with every outgoing connection blocked."""
    attempts = []

    def block_connection(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is blocked in this test")

    reports = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", block_connection)
        patch.setattr(socket, "create_connection", block_connection)
        extractor = MiniLMExtractor()
        result = extractor.extract(
            text_samples(TEXTS + ("broken",), failing={3}),
            device=CPU,
            batch_size=2,
            progress=lambda f, m: reports.append((f, m)),
        )
    return extractor, result, attempts, reports


def test_embeddings_shape_and_norm(offline_extraction):
    _, result, _, _ = offline_extraction

    assert result.features.shape == (3, EMBEDDING_DIM)
    assert result.features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.features, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer(offline_extraction):
    _, result, _, _ = offline_extraction
    cat, kitten, revenue = result.features

    assert cat @ kitten > cat @ revenue + 0.2
    assert cat @ kitten > kitten @ revenue + 0.2


def test_failing_text_is_skipped(offline_extraction):
    _, result, _, _ = offline_extraction

    assert result.kept.tolist() == [0, 1, 2]
    assert [(entry.item, entry.reason) for entry in result.skipped] == [("row 3", "invalid UTF-8 in row")]


def test_model_loads_without_network(offline_extraction):
    _, _, attempts, _ = offline_extraction

    assert attempts == []


def test_progress_per_batch(offline_extraction):
    _, _, _, reports = offline_extraction

    assert [message for _, message in reports] == ["Embedding texts: 2/4", "Embedding texts: 4/4"]
    assert reports[-1][0] == 1.0


def test_fingerprint_stable(offline_extraction):
    extractor, _, _, _ = offline_extraction

    assert MiniLMExtractor().fingerprint() == extractor.fingerprint()
    assert len(extractor.fingerprint()) == 16


def test_image_data_rejected(make_images):
    with pytest.raises(ValueError, match="model source minilm embeds text, but dataset 'test-images' has image items"):
        MiniLMExtractor().extract(make_images(1), device=CPU)

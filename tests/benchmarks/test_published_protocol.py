"""The speed baseline must compute a real LSI, or the speed ratio means nothing."""

import numpy as np
from scipy.stats import spearmanr

from benchmarks import published_protocol
from benchmarks._common import flip_labels
from lsi_app.engine import compute_lsi

from tests.engine.helpers import blobs


def test_protocol_lsi_agrees_with_engine_diag(monkeypatch):
    monkeypatch.setattr(published_protocol, "EPOCHS", 400)
    monkeypatch.setattr(published_protocol, "LEARNING_RATE", 0.05)
    x, y = blobs(40, 2, 2, seed=3, spread=1.0)
    features, labels = x[:, :-1].numpy(), y.numpy()
    indices = list(range(12))

    protocol = published_protocol.protocol_lsi(features, labels, indices)

    assert np.isfinite(protocol).all()
    assert (protocol >= 0).all()
    engine = compute_lsi(features, labels, hessian="diag", method="exact")["lsi"].to_numpy()[indices]
    assert spearmanr(protocol, engine).statistic > 0.7


def test_flip_labels_moves_labels_to_other_classes():
    labels = np.arange(1000) % 10

    noisy, flipped = flip_labels(labels, 0.2, 10, seed=0)

    assert 150 < flipped.sum() < 250
    assert (noisy[flipped] != labels[flipped]).all()
    assert (noisy[~flipped] == labels[~flipped]).all()

import numpy as np
from sklearn.metrics import roc_auc_score

from lsi_app.engine import compute_lsi, mislabel_score

from tests.engine.helpers import blobs


def test_mislabel_score_is_lsi_times_loss():
    lsi = np.array([0.0, 0.5, 2.0])
    loss = np.array([3.0, 0.1, 1.0])

    np.testing.assert_allclose(mislabel_score(lsi, loss), [0.0, 0.05, 2.0])


def test_mislabel_score_ranks_flipped_labels_first():
    x, y = blobs(150, 3, 3, seed=30, spread=0.6)
    features, labels = x[:, :-1].numpy(), y.numpy().copy()
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[[4, 50, 99]] = True
    labels[flipped] = (labels[flipped] + 1) % 3

    table = compute_lsi(features, labels)

    top = set(np.argsort(table["mislabel_score"].to_numpy())[::-1][:3])
    assert top == {4, 50, 99}
    assert roc_auc_score(flipped, table["mislabel_score"]) > 0.99
    assert (table["mislabel_score"] >= 0).all()

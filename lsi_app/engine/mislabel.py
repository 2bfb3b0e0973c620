"""Mislabel evidence combining LSI with the probe's disagreement with the label."""

from __future__ import annotations

import numpy as np


def mislabel_score(lsi: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Score how likely each given label is wrong; higher = more likely mislabeled.

    ``mislabel_score = LSI * loss``, with ``loss = -ln p_label`` the probe's
    cross-entropy of the given label. A high LSI alone marks samples the
    posterior depends on, atypical or mislabeled. The loss factor keeps those
    whose label the probe finds unlikely and sends confidently fitted
    atypical samples down the ranking.

    On scikit-learn's digits (standardised pixels, 5% and 20% of labels
    flipped) this product ranked flipped labels better than LSI alone, the
    loss alone, ``LSI * (1 - p_label)`` and cleanlab's label-quality score
    (``benchmarks/mislabel.py``).

    Parameters
    ----------
    lsi : ndarray of shape (n_samples,)
        LSI in nats.
    loss : ndarray of shape (n_samples,)
        Cross-entropy of the given label in nats.

    Returns
    -------
    ndarray of shape (n_samples,), in nats squared, >= 0.
    """
    return np.asarray(lsi) * np.asarray(loss)

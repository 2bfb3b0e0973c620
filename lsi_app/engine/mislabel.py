"""Mislabel evidence combining LSI with the probe's disagreement with the label."""

from __future__ import annotations

import numpy as np


def mislabel_score(lsi: np.ndarray, p_label: np.ndarray) -> np.ndarray:
    """Score how likely each given label is wrong; higher = more likely mislabeled.

    ``mislabel_score = LSI * (1 - p_label)``. A high LSI alone marks samples
    the posterior depends on, atypical or mislabeled; the factor
    ``1 - p_label``, the probe's probability mass away from the given label,
    keeps those the probe disagrees with and sends confidently fitted
    atypical samples down the ranking.

    Parameters
    ----------
    lsi : ndarray of shape (n_samples,)
        LSI in nats.
    p_label : ndarray of shape (n_samples,)
        Probe probability of the given label.

    Returns
    -------
    ndarray of shape (n_samples,), in nats, >= 0.
    """
    return np.asarray(lsi) * (1.0 - np.asarray(p_label))

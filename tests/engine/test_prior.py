import math

import numpy as np
import pytest
import torch

from lsi_app.engine import fit_posterior, fit_probe, log_evidence, select_prior_precision

from tests.engine.helpers import STRUCTURES, blobs


@pytest.mark.parametrize("structure", STRUCTURES)
def test_select_prior_precision_maximises_evidence(structure):
    x, y = blobs(80, 3, 3, seed=20, spread=1.5)
    grid = (0.01, 0.1, 1.0, 10.0, 100.0)

    selection = select_prior_precision(x, y, 3, structure, grid=grid)

    assert selection.grid == list(grid)
    best = int(np.argmax(selection.grid_log_evidence))
    assert selection.prior_precision == grid[best]
    assert selection.log_evidence == selection.grid_log_evidence[best]
    # Each grid value is the evidence at that precision's own MAP.
    refit = fit_probe(x, y, 3, grid[best])
    expected = log_evidence(fit_posterior(structure, x, refit.weights, grid[best]), x, y)
    assert selection.log_evidence == pytest.approx(expected, rel=1e-8)


def test_select_prior_precision_raises_when_no_finite_evidence(monkeypatch):
    x, y = blobs(20, 2, 2)
    monkeypatch.setattr("lsi_app.engine.prior.log_evidence", lambda posterior, features, labels: math.nan)

    with pytest.raises(ValueError, match="no prior precision in 0.1..10 gives a finite marginal likelihood"):
        select_prior_precision(x, y, 2, "full", grid=(0.1, 1.0, 10.0))


def test_select_prior_precision_warns_at_grid_edge(caplog):
    x, y = blobs(60, 2, 2, seed=21, spread=0.05)  # nearly separable: evidence favours weak priors

    with caplog.at_level("WARNING"):
        selection = select_prior_precision(x, y, 2, "full", grid=(10.0, 100.0, 1000.0))

    assert selection.prior_precision == 10.0
    assert "edge of the grid" in caplog.text


def test_select_prior_precision_reports_progress():
    x, y = blobs(20, 2, 2)
    reports = []

    select_prior_precision(x, y, 2, "diag", grid=(0.1, 1.0), progress=lambda f, m: reports.append(f))

    assert reports == [0.5, 1.0]
    assert torch.is_tensor(x)

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from lsi_app.engine import fit_probe
from lsi_app.engine.probe import gradient, objective

from tests.engine.helpers import blobs, dense_precision


@pytest.mark.parametrize("prior_precision", [0.1, 1.0, 10.0])
def test_fit_probe_matches_sklearn_logistic_regression(prior_precision):
    x, y = blobs(60, 3, 3, seed=4)
    fit = fit_probe(x, y, 3, prior_precision)

    # sklearn minimises C * sum CE + 1/2 ||W||^2, the same optimum when C = 1/lambda.
    reference = LogisticRegression(C=1 / prior_precision, fit_intercept=False, tol=1e-12, max_iter=10_000)
    reference.fit(x.numpy(), y.numpy())

    np.testing.assert_allclose(fit.weights.numpy(), reference.coef_, atol=2e-5)


def test_fit_probe_reaches_tolerance_and_returns_hessian():
    x, y = blobs(80, 4, 4, seed=5)
    fit = fit_probe(x, y, 4, 0.5, tolerance=1e-10)

    assert fit.gradient_norm <= 1e-10
    torch.testing.assert_close(torch.linalg.vector_norm(gradient(x, y, fit.weights, 0.5)) / 80, torch.tensor(fit.gradient_norm, dtype=torch.float64))
    torch.testing.assert_close(fit.precision, dense_precision(x, fit.weights, 0.5), rtol=1e-10, atol=1e-10)


def test_fit_probe_separable_data_stays_finite():
    x = torch.tensor([[-2.0, 1.0], [-1.0, 1.0], [1.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])

    fit = fit_probe(x, y, 2, prior_precision=1e-3)

    assert torch.isfinite(fit.weights).all()
    assert fit.gradient_norm < 1e-6


def test_fit_probe_warm_start_takes_fewer_steps():
    x, y = blobs(100, 5, 3, seed=6)
    cold = fit_probe(x, y, 3, 1.0)

    warm = fit_probe(x[1:], y[1:], 3, 1.0, initial_weights=cold.weights)
    cold_loo = fit_probe(x[1:], y[1:], 3, 1.0)

    assert warm.iterations < cold_loo.iterations
    torch.testing.assert_close(warm.weights, cold_loo.weights, atol=1e-7, rtol=0)


def test_gradient_matches_autograd():
    x, y = blobs(20, 3, 3, seed=7)
    weights = torch.randn(3, x.shape[1], dtype=torch.float64, requires_grad=True)

    objective(x, y, weights, 0.3).backward()

    torch.testing.assert_close(gradient(x, y, weights.detach(), 0.3), weights.grad)


def test_fit_probe_lbfgs_matches_newton():
    x, y = blobs(120, 6, 4, seed=13)

    newton = fit_probe(x, y, 4, 0.5, solver="newton")
    lbfgs = fit_probe(x, y, 4, 0.5, solver="lbfgs")

    assert lbfgs.solver == "lbfgs"
    assert lbfgs.precision is None
    assert lbfgs.gradient_norm <= 1e-8
    torch.testing.assert_close(lbfgs.weights, newton.weights, atol=1e-5, rtol=0)


def test_fit_probe_auto_solver_by_size(monkeypatch):
    x, y = blobs(50, 3, 3, seed=14)
    assert fit_probe(x, y, 3, 1.0).solver == "newton"

    monkeypatch.setattr("lsi_app.engine.probe.NEWTON_MAX_PARAMETERS", 4)

    assert fit_probe(x, y, 3, 1.0).solver == "lbfgs"


def test_fit_probe_unknown_solver():
    x, y = blobs(10, 2, 2)

    with pytest.raises(ValueError, match="solver='sgd' is not supported"):
        fit_probe(x, y, 2, 1.0, solver="sgd")

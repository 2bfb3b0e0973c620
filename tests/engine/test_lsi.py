import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from lsi_app.engine import FullPosterior, exact_lsi, fast_lsi, fit_probe, gaussian_kl
from lsi_app.engine._linalg import softmax_curvature, symmetric_sqrt

from tests.engine.helpers import blobs, dense_precision, reference_kl


def _posterior(x, y, n_classes, prior_precision):
    fit = fit_probe(x, y, n_classes, prior_precision, tolerance=1e-12)
    return FullPosterior(mean=fit.weights, precision=fit.precision)


def _dense_one_step_lsi(x, y, posterior, index):
    """The quantity the closed form evaluates, built densely: one Newton step, curvature held."""
    n_classes, n_features = posterior.mean.shape
    phi = x[index]
    p = torch.softmax(posterior.mean @ phi, dim=0)
    residual = p - torch.nn.functional.one_hot(y[index], n_classes).double()
    jacobian = torch.kron(torch.eye(n_classes, dtype=x.dtype), phi[None, :])
    factor = jacobian.T @ symmetric_sqrt(softmax_curvature(p[None]))[0]  # (P, C)
    loo_precision = posterior.precision - factor @ factor.T
    step = torch.linalg.solve(loo_precision, jacobian.T @ residual)
    mean = posterior.mean.reshape(-1)
    return reference_kl(mean, posterior.precision, mean + step, loo_precision)


@pytest.mark.parametrize("n_classes, n_features, prior_precision", [(2, 3, 1.0), (3, 4, 0.5), (5, 2, 3.0)])
def test_fast_lsi_matches_dense_one_step_reference(n_classes, n_features, prior_precision):
    x, y = blobs(24, n_features, n_classes, seed=n_classes)
    posterior = _posterior(x, y, n_classes, prior_precision)

    fast = fast_lsi(x, y, posterior)

    expected = torch.tensor([_dense_one_step_lsi(x, y, posterior, i) for i in range(len(y))], dtype=torch.float64)
    torch.testing.assert_close(fast, expected, rtol=1e-8, atol=1e-12)


def test_fast_lsi_independent_of_chunking(monkeypatch):
    x, y = blobs(40, 3, 3)
    posterior = _posterior(x, y, 3, 1.0)
    whole = fast_lsi(x, y, posterior)

    monkeypatch.setattr("lsi_app.engine.lsi.chunk_rows", lambda row_bytes, n: 6)

    torch.testing.assert_close(fast_lsi(x, y, posterior), whole, rtol=1e-12, atol=1e-14)


def test_exact_lsi_matches_independent_refit():
    x, y = blobs(30, 2, 3, seed=8)
    prior_precision = 0.8
    posterior = _posterior(x, y, 3, prior_precision)

    exact = exact_lsi(x, y, posterior, prior_precision, [0, 7, 19], tolerance=1e-12)

    for position, index in enumerate([0, 7, 19]):
        keep = np.arange(len(y)) != index
        refit = LogisticRegression(C=1 / prior_precision, fit_intercept=False, tol=1e-13, max_iter=10_000)
        refit.fit(x[keep].numpy(), y[keep].numpy())
        weights = torch.tensor(refit.coef_)
        loo_precision = dense_precision(x[keep], weights, prior_precision)
        expected = reference_kl(posterior.mean.reshape(-1), posterior.precision, weights.reshape(-1), loo_precision)
        assert exact[position].item() == pytest.approx(expected, rel=1e-5)


def test_fast_lsi_ranks_like_exact():
    x, y = blobs(60, 3, 3, seed=9, spread=1.5)
    posterior = _posterior(x, y, 3, 1.0)

    fast = fast_lsi(x, y, posterior).numpy()
    exact = exact_lsi(x, y, posterior, 1.0, range(len(y))).numpy()

    assert spearmanr(fast, exact).statistic > 0.98
    assert np.median(np.abs(fast - exact) / exact) < 0.1


def test_lsi_drops_when_sample_is_duplicated():
    x, y = blobs(30, 2, 3, seed=10, spread=1.5)
    single = fast_lsi(x, y, _posterior(x, y, 3, 1.0))
    index = int(single.argmax())

    x_dup = torch.cat([x, x[index : index + 1]])
    y_dup = torch.cat([y, y[index : index + 1]])
    duplicated = fast_lsi(x_dup, y_dup, _posterior(x_dup, y_dup, 3, 1.0))

    assert duplicated[index] < single[index]
    assert duplicated[-1] == pytest.approx(duplicated[index].item(), rel=1e-9)


def test_lsi_rises_when_label_is_flipped():
    x, y = blobs(40, 2, 3, seed=11, spread=0.5)
    before = fast_lsi(x, y, _posterior(x, y, 3, 1.0))

    flipped = y.clone()
    flipped[5] = (y[5] + 1) % 3
    after = fast_lsi(x, flipped, _posterior(x, flipped, 3, 1.0))

    assert after[5] > 5 * before[5]
    assert int(after.argmax()) == 5


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_classes=st.integers(2, 4),
    prior_precision=st.floats(1e-3, 1e3),
    spread=st.floats(0.01, 3.0),
)
def test_fast_lsi_non_negative_and_finite(seed, n_classes, prior_precision, spread):
    x, y = blobs(12, 2, n_classes, seed=seed, spread=spread)
    scores = fast_lsi(x, y, _posterior(x, y, n_classes, prior_precision))

    assert torch.isfinite(scores).all()
    assert (scores >= 0).all()


def test_fast_lsi_single_sample_class_and_separable_data():
    x = torch.tensor([[-3.0, 1.0], [-2.0, 1.0], [2.0, 1.0], [3.0, 1.0], [9.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one sample; classes separate perfectly

    scores = fast_lsi(x, y, _posterior(x, y, 3, 0.01))

    assert torch.isfinite(scores).all()
    assert (scores >= 0).all()
    assert int(scores.argmax()) == 4


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 5), shift=st.floats(0.0, 2.0))
def test_gaussian_kl_properties(seed, size, shift):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=generator, dtype=torch.float64)
    b = torch.randn(size, size, generator=generator, dtype=torch.float64)
    precision_p = a @ a.T + 0.5 * torch.eye(size, dtype=torch.float64)
    precision_q = b @ b.T + 0.5 * torch.eye(size, dtype=torch.float64)
    mean_p = torch.randn(size, generator=generator, dtype=torch.float64)
    mean_q = mean_p + shift

    kl = gaussian_kl(mean_p, precision_p, mean_q, precision_q).item()

    assert kl >= -1e-10
    assert gaussian_kl(mean_p, precision_p, mean_p, precision_p).item() == pytest.approx(0.0, abs=1e-9)
    assert kl == pytest.approx(reference_kl(mean_p, precision_p, mean_q, precision_q), rel=1e-8, abs=1e-10)

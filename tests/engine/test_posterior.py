import pytest
import torch
from laplace import FullLaplace
from laplace.curvature import BackPackGGN
from torch.utils.data import DataLoader, TensorDataset

from lsi_app.engine import FullPosterior, fit_probe, ggn_precision
from lsi_app.engine._linalg import CHUNK_BYTES

from tests.engine.helpers import blobs, dense_precision


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_ggn_precision_matches_dense_jacobians(n_classes):
    x, _ = blobs(30, 4, n_classes, seed=n_classes)
    weights = torch.randn(n_classes, x.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(x @ weights.T, dim=1)

    fast = ggn_precision(x, probs, prior_precision=0.7)

    torch.testing.assert_close(fast, dense_precision(x, weights, 0.7), rtol=1e-10, atol=1e-10)


def test_ggn_precision_independent_of_chunking(monkeypatch):
    x, _ = blobs(50, 3, 4)
    probs = torch.softmax(x @ torch.ones(4, x.shape[1], dtype=torch.float64).cumsum(0).T, dim=1)
    whole = ggn_precision(x, probs, 1.0)

    # A budget of a few rows forces many chunks.
    monkeypatch.setattr("lsi_app.engine.posterior.chunk_rows", lambda row_bytes, n: 7)
    chunked = ggn_precision(x, probs, 1.0)

    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    assert CHUNK_BYTES > 0


def test_ggn_precision_matches_laplace_torch():
    x, y = blobs(40, 3, 3, seed=2)
    fit = fit_probe(x, y, 3, prior_precision=2.0)
    model = torch.nn.Linear(x.shape[1], 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(fit.weights)
    # BackPack agrees to 1e-14 in float64; laplace-torch 0.3's default backend
    # (curvlinops) differed by about 2e-7 on this problem.
    laplace = FullLaplace(model, "classification", prior_precision=2.0, backend=BackPackGGN)
    laplace.fit(DataLoader(TensorDataset(x, y), batch_size=16))

    torch.testing.assert_close(fit.precision, laplace.posterior_precision, rtol=1e-8, atol=1e-8)


def test_full_posterior_covariance_inverts_precision():
    x, y = blobs(25, 3, 3)
    fit = fit_probe(x, y, 3, prior_precision=1.0)
    posterior = FullPosterior(mean=fit.weights, precision=fit.precision)

    identity = posterior.covariance @ posterior.precision

    torch.testing.assert_close(identity, torch.eye(identity.shape[0], dtype=torch.float64), atol=1e-9, rtol=0)
    assert posterior.class_blocks().shape == (3, x.shape[1], 3, x.shape[1])
    torch.testing.assert_close(posterior.logdet_precision, torch.logdet(fit.precision))


def test_full_posterior_rejects_indefinite_precision():
    posterior = FullPosterior(mean=torch.zeros(2, 1, dtype=torch.float64), precision=-torch.eye(2, dtype=torch.float64))

    with pytest.raises(ValueError, match="not positive definite"):
        posterior.cholesky

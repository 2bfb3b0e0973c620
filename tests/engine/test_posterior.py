import pytest
import torch
from laplace import DiagLaplace, FullLaplace, KronLaplace
from laplace.curvature import BackPackGGN
from torch.utils.data import DataLoader, TensorDataset

from lsi_app.engine import FullPosterior, fit_posterior, fit_probe, ggn_precision, log_evidence

from tests.engine.helpers import DENSE_PRECISION, STRUCTURES, blobs, dense_precision

LAPLACE_CLASSES = {"full": FullLaplace, "kron": KronLaplace, "diag": DiagLaplace}


def _laplace_torch(structure, x, y, weights, prior_precision):
    model = torch.nn.Linear(x.shape[1], weights.shape[0], bias=False).double()
    with torch.no_grad():
        model.weight.copy_(weights)
    # BackPack agrees with the dense references to 1e-14 in float64; laplace-torch
    # 0.3's default backend (curvlinops) differed by about 2e-7 on these problems.
    laplace = LAPLACE_CLASSES[structure](model, "classification", prior_precision=prior_precision, backend=BackPackGGN)
    laplace.fit(DataLoader(TensorDataset(x, y), batch_size=16))
    return laplace


def _laplace_dense_precision(structure, laplace):
    precision = laplace.posterior_precision
    if structure == "kron":
        return precision.to_matrix()
    if structure == "diag":
        return torch.diag(precision)
    return precision


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_ggn_precision_matches_dense_jacobians(n_classes):
    x, _ = blobs(30, 4, n_classes, seed=n_classes)
    weights = torch.randn(n_classes, x.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(x @ weights.T, dim=1)

    fast = ggn_precision(x, probs, prior_precision=0.7)

    torch.testing.assert_close(fast, dense_precision(x, weights, 0.7), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_posterior_precision_matches_dense_reference(structure):
    x, y = blobs(35, 3, 4, seed=3)
    fit = fit_probe(x, y, 4, prior_precision=1.5)

    posterior = fit_posterior(structure, x, fit.weights, 1.5)

    expected = DENSE_PRECISION[structure](x, fit.weights, 1.5)
    torch.testing.assert_close(posterior.dense_precision(), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(posterior.logdet_precision, torch.logdet(expected), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_posterior_matches_laplace_torch(structure):
    x, y = blobs(40, 3, 3, seed=2)
    fit = fit_probe(x, y, 3, prior_precision=2.0)
    laplace = _laplace_torch(structure, x, y, fit.weights, 2.0)

    posterior = fit_posterior(structure, x, fit.weights, 2.0)

    expected = _laplace_dense_precision(structure, laplace)
    torch.testing.assert_close(posterior.dense_precision(), expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_log_evidence_matches_laplace_torch(structure):
    x, y = blobs(40, 3, 3, seed=4)
    fit = fit_probe(x, y, 3, prior_precision=0.5)
    laplace = _laplace_torch(structure, x, y, fit.weights, 0.5)

    ours = log_evidence(fit_posterior(structure, x, fit.weights, 0.5), x, y)

    assert ours == pytest.approx(float(laplace.log_marginal_likelihood()), rel=1e-8)


def test_full_posterior_covariance_inverts_precision():
    x, y = blobs(25, 3, 3)
    fit = fit_probe(x, y, 3, prior_precision=1.0)
    posterior = FullPosterior(mean=fit.weights, precision=fit.precision, prior_precision=1.0)

    identity = posterior.covariance @ posterior.precision

    torch.testing.assert_close(identity, torch.eye(identity.shape[0], dtype=torch.float64), atol=1e-9, rtol=0)
    assert posterior.class_blocks().shape == (3, x.shape[1], 3, x.shape[1])
    torch.testing.assert_close(posterior.logdet_precision, torch.logdet(fit.precision))


def test_full_posterior_k_blocks_match_dense():
    x, y = blobs(20, 3, 4, seed=5)
    fit = fit_probe(x, y, 4, prior_precision=1.0)
    posterior = FullPosterior(fit.weights, fit.precision, 1.0)
    covariance = torch.linalg.inv(fit.precision)

    blocks = posterior.k_blocks(x)

    for i, phi in enumerate(x):
        jacobian = torch.kron(torch.eye(4, dtype=x.dtype), phi[None, :])
        torch.testing.assert_close(blocks[i], jacobian @ covariance @ jacobian.T, rtol=1e-9, atol=1e-12)


def test_full_posterior_rejects_indefinite_precision():
    posterior = FullPosterior(mean=torch.zeros(2, 1, dtype=torch.float64), precision=-torch.eye(2, dtype=torch.float64))

    with pytest.raises(ValueError, match="not positive definite"):
        posterior.cholesky

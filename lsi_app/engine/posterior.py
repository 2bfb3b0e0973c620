"""Laplace posteriors over the weights of a linear softmax probe.

The probe maps a feature vector ``phi`` (length D, bias column included) to
logits ``W phi`` with ``W`` of shape (C, D). Parameters are flattened
class-major, ``theta[c * D + d] = W[c, d]``, which is also the row-major
flattening of ``torch.nn.Linear(D, C, bias=False).weight``.

For this model the generalised Gauss-Newton (GGN) matrix equals the exact
Hessian of the summed cross-entropy, so the full posterior precision is

    Lambda = sum_i (H_i kron phi_i phi_i^T) + lambda * I,
    H_i = diag(p_i) - p_i p_i^T,

with ``p_i`` the softmax probabilities at the MAP and ``lambda`` the prior
precision. :class:`KronPosterior` and :class:`DiagPosterior` approximate the
GGN term the way laplace-torch's ``KronLaplace`` and ``DiagLaplace`` do for a
bias-free ``Linear`` layer; the tests check both against laplace-torch.

Each class computes the closed-form LSI of its structure (``one_step_lsi``):
one Newton step from the MAP without sample ``i``, ``d = Lambda_-i^-1 g_i``
with ``g_i = (p_i - onehot(y_i)) kron phi_i``, and the KL between
``N(theta, Lambda^-1)`` and ``N(theta + d, Lambda_-i^-1)``. The curvature of
the other samples is held at the MAP; ``Lambda_-i`` is the same structure
with sample ``i``'s term removed. Each also gives ``logdet_precision`` for
the marginal likelihood.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from enum import Enum
from functools import cached_property

import torch

from lsi_app.engine._linalg import chunk_rows, logdet_from_cholesky, softmax_curvature
from lsi_app.engine.woodbury import low_rank_downdate_lsi


class HessianStructure(str, Enum):
    """Structure of the posterior precision."""

    FULL = "full"
    KRON = "kron"
    DIAG = "diag"


def _upper_pairs(n_classes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the class pairs ``(c, k)`` with ``c <= k`` as two index tensors."""
    rows, cols = torch.triu_indices(n_classes, n_classes, device=device)
    return rows, cols


def ggn_precision(features: torch.Tensor, probs: torch.Tensor, prior_precision: float) -> torch.Tensor:
    """Compute the dense GGN posterior precision of a linear softmax probe.

    Each D x D block ``Lambda_ck = sum_i H_i[c, k] phi_i phi_i^T`` is one
    matrix product over all samples. Only the blocks with ``c <= k`` are
    computed, the rest mirror them. (One product over all pairs at once was
    slower on a 2-core CPU, 10.4 s against 8.8 s at 50k x 513 x 10.)

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
        Probe inputs, bias column included.
    probs : Tensor of shape (n_samples, n_classes)
        Softmax probabilities at the parameters where the curvature is taken.
    prior_precision : float
        Precision ``lambda`` of the isotropic Gaussian prior.

    Returns
    -------
    Tensor of shape (n_classes * n_features, n_classes * n_features)
        ``Lambda`` in class-major order.
    """
    n_features = features.shape[1]
    n_classes = probs.shape[1]
    precision = features.new_zeros(n_classes, n_features, n_classes, n_features)
    for c in range(n_classes):
        for k in range(c, n_classes):
            # H_i[c, k] = p_ic * (delta_ck - p_ik)
            weight = probs[:, c] * ((1.0 if c == k else 0.0) - probs[:, k])
            block = (features * weight[:, None]).T @ features  # (D, D)
            precision[c, :, k, :] = block
            if k != c:
                precision[k, :, c, :] = block
    n_params = n_classes * n_features
    precision = precision.reshape(n_params, n_params)
    precision.diagonal().add_(prior_precision)
    return precision


class Posterior(ABC):
    """Gaussian posterior ``N(mean, Lambda^-1)`` over the probe weights.

    Parameters
    ----------
    mean : Tensor of shape (n_classes, n_features)
        MAP weights.
    prior_precision : float
    """

    structure: HessianStructure

    def __init__(self, mean: torch.Tensor, prior_precision: float) -> None:
        self.mean = mean
        self.prior_precision = float(prior_precision)

    @property
    def n_classes(self) -> int:
        return self.mean.shape[0]

    @property
    def n_features(self) -> int:
        return self.mean.shape[1]

    @property
    def n_params(self) -> int:
        return self.n_classes * self.n_features

    @classmethod
    @abstractmethod
    def fit(
        cls, features: torch.Tensor, mean: torch.Tensor, prior_precision: float
    ) -> Posterior:
        """Build the posterior at ``mean`` from the samples in ``features``."""

    @abstractmethod
    def one_step_lsi(self, features: torch.Tensor, probs: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Return the closed-form LSI of a chunk of samples, shape (n_samples,).

        ``features`` (B, D) are the samples' probe inputs, ``probs`` (B, C)
        their softmax probabilities at the MAP and ``residual`` (B, C) the
        gradient factors ``p_i - onehot(y_i)``.
        """

    @property
    @abstractmethod
    def logdet_precision(self) -> torch.Tensor:
        """``ln det Lambda`` as a scalar tensor."""

    @abstractmethod
    def dense_precision(self) -> torch.Tensor:
        """``Lambda`` as a dense (P, P) tensor; for checks on small problems."""

    @staticmethod
    @abstractmethod
    def memory_bytes(n_classes: int, n_features: int, element_size: int) -> int:
        """Estimate the bytes the posterior holds for the given problem size."""

    @abstractmethod
    def row_bytes(self, element_size: int) -> int:
        """Bytes of intermediate tensors per sample inside :meth:`one_step_lsi`."""


class FullPosterior(Posterior):
    """Posterior with the dense GGN precision; exact, ``O(P^2)`` memory."""

    structure = HessianStructure.FULL

    def __init__(self, mean: torch.Tensor, precision: torch.Tensor, prior_precision: float = float("nan")) -> None:
        super().__init__(mean, prior_precision)
        self.precision = precision

    @classmethod
    def fit(cls, features, mean, prior_precision):
        probs = torch.softmax(features @ mean.T, dim=1)
        return cls(mean, ggn_precision(features, probs, prior_precision), prior_precision)

    @cached_property
    def cholesky(self) -> torch.Tensor:
        """Lower Cholesky factor of the precision, of shape (P, P)."""
        factor, info = torch.linalg.cholesky_ex(self.precision)
        if int(info) != 0:
            raise ValueError(
                "posterior precision is not positive definite; increase prior_precision "
                "(it must be > 0), use float64, or check the features for extreme values"
            )
        return factor

    @cached_property
    def covariance(self) -> torch.Tensor:
        """Posterior covariance ``Sigma = Lambda^-1``, of shape (P, P)."""
        return torch.cholesky_inverse(self.cholesky)

    @property
    def logdet_precision(self) -> torch.Tensor:
        return logdet_from_cholesky(self.cholesky)

    def dense_precision(self) -> torch.Tensor:
        return self.precision

    def class_blocks(self) -> torch.Tensor:
        """Return ``Sigma`` as blocks ``[c, d, k, e] = Sigma[c * D + d, k * D + e]``."""
        c, d = self.n_classes, self.n_features
        return self.covariance.reshape(c, d, c, d)

    @cached_property
    def _pair_covariance(self) -> torch.Tensor:
        # (D, n_pairs * D): column block j holds Sigma_ck for the j-th pair c <= k.
        rows, cols = _upper_pairs(self.n_classes, self.mean.device)
        blocks = self.class_blocks()[rows, :, cols, :]  # (n_pairs, D, D)
        return blocks.permute(1, 0, 2).reshape(self.n_features, -1)

    def row_bytes(self, element_size: int) -> int:
        n_pairs = self.n_classes * (self.n_classes + 1) // 2
        return (n_pairs * self.n_features + 8 * self.n_classes**2) * element_size

    def one_step_lsi(self, features, probs, residual):
        """``Lambda_-i = Lambda - J_i^T H_i J_i``: exact removal of the sample's GGN term.

        The C x C algebra runs in float64 whatever the working dtype: it is
        cheap, and ``ln det(I - M)`` loses digits in float32 when M is small.
        """
        scores = low_rank_downdate_lsi(self.k_blocks(features).double(), probs.double(), residual.double())
        return scores.to(features.dtype)

    def k_blocks(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``K_i[c, k] = phi_i^T Sigma_ck phi_i``, shape (n_samples, C, C)."""
        n_samples = features.shape[0]
        rows, cols = _upper_pairs(self.n_classes, features.device)
        projected = (features @ self._pair_covariance).reshape(n_samples, -1, self.n_features)
        pair_values = torch.bmm(projected, features[:, :, None]).squeeze(-1)  # (B, n_pairs)
        blocks = features.new_zeros(n_samples, self.n_classes, self.n_classes)
        blocks[:, rows, cols] = pair_values
        blocks[:, cols, rows] = pair_values
        return blocks

    @staticmethod
    def memory_bytes(n_classes, n_features, element_size):
        # Precision, Cholesky factor and covariance are alive at once.
        return 3 * (n_classes * n_features) ** 2 * element_size


class KronPosterior(Posterior):
    """Kronecker-factored GGN: ``Lambda ~ G kron A + lambda I``.

    ``G = (1/N) sum_i H_i`` (C x C) and ``A = sum_i phi_i phi_i^T`` (D x D),
    the K-FAC factors that laplace-torch uses for a Linear layer. With the
    eigendecompositions ``G = Q_G diag(g) Q_G^T`` and ``A = Q_A diag(a) Q_A^T``
    the precision is diagonal, ``g_a a_b + lambda``, in the basis
    ``Q_G kron Q_A``.

    For LSI, ``Lambda_-i = G' kron A' + lambda I`` is the K-FAC built without
    sample ``i``. ``A' = A - phi_i phi_i^T`` is exact, a rank-one downdate.
    ``G'`` keeps the eigenbasis ``Q_G`` with the diagonal of
    ``(N G - H_i) / (N - 1)`` in that basis, ``g'_a``: sample ``i`` moves
    ``G`` by ``H_i / N`` only. Every term of the KL then reduces to the sums
    ``s_ia = sum_b (Q_A^T phi_i)_b^2 / (g'_a a_b + lambda)`` through the
    Sherman-Morrison formula and the matrix determinant lemma, so a sample
    costs one projection of ``phi_i`` and ``O(C D)`` further work. On digits
    a full C x C eigendecomposition of ``G'`` per sample instead changed the
    Spearman correlation with exact refits by under 0.002.
    """

    structure = HessianStructure.KRON

    def __init__(self, mean, class_factor, feature_factor, prior_precision, n_samples):
        super().__init__(mean, prior_precision)
        self.n_samples = int(n_samples)
        self.class_factor = class_factor
        self.feature_factor = feature_factor
        class_values, self.class_vectors = torch.linalg.eigh(class_factor)
        feature_values, self.feature_vectors = torch.linalg.eigh(feature_factor)
        self.class_values = class_values.clamp_min(0)
        self.feature_values = feature_values.clamp_min(0)
        # eigenvalues[a, b] = g_a * a_b + lambda, shape (C, D)
        self.eigenvalues = self.class_values[:, None] * self.feature_values[None, :] + self.prior_precision

    @classmethod
    def fit(cls, features, mean, prior_precision):
        probs = torch.softmax(features @ mean.T, dim=1)
        n_samples = features.shape[0]
        class_factor = features.new_zeros(mean.shape[0], mean.shape[0])
        batch = chunk_rows(mean.shape[0] ** 2 * features.element_size(), n_samples)
        for start in range(0, n_samples, batch):
            class_factor += softmax_curvature(probs[start : start + batch]).sum(0)
        return cls(mean, class_factor / n_samples, features.T @ features, prior_precision, n_samples)

    @property
    def logdet_precision(self):
        return torch.log(self.eigenvalues).sum()

    def dense_precision(self):
        precision = torch.kron(self.class_factor, self.feature_factor)
        precision.diagonal().add_(self.prior_precision)
        return precision

    def row_bytes(self, element_size):
        # float64 per-sample work: a few (C, D) and (C, C) tensors per row
        return (2 * self.n_features * element_size) + 8 * (4 * self.n_classes * self.n_features + 4 * self.n_classes**2)

    def one_step_lsi(self, features, probs, residual):
        n = self.n_samples
        feature_values = self.feature_values.double()  # a, (D,)
        class_values = self.class_values.double()  # g, (C,)
        eigenvalues = self.eigenvalues.double()  # g_a a_b + lambda, (C, D)
        rotated_sq = ((features @ self.feature_vectors) ** 2).double()  # z_b^2 = (Q_A^T phi)_b^2, (B, D)
        probs, residual = probs.double(), residual.double()
        vectors = self.class_vectors.double()

        # g'_a: the diagonal of (N G - H_i) / (N - 1) in the Q_G basis, where
        # (Q_G^T H_i Q_G)_aa = sum_c p_c Q_ca^2 - (sum_c p_c Q_ca)^2.
        curvature_diag = probs @ vectors**2 - (probs @ vectors) ** 2
        loo_values = ((n * class_values - curvature_diag) / max(n - 1, 1)).clamp_min(0)  # (B, C)

        # tr(Lambda_-i Lambda^-1) - P, as a sum of small differences:
        # sum_ab [(g'_a - g_a) a_b - g'_a z_b^2] / (g_a a_b + lambda)
        inverse = 1.0 / eigenvalues
        trace_term = ((loo_values - class_values) * (inverse @ feature_values)).sum(-1) - (
            loo_values * (rotated_sq @ inverse.T)
        ).sum(-1)

        # s_ia = phi^T (g'_a A + lambda I)^-1 phi, and the determinant lemma for A' = A - phi phi^T
        scaled = loo_values[:, :, None] * feature_values[None, None, :] + self.prior_precision  # (B, C, D)
        s = (rotated_sq[:, None, :] / scaled).sum(-1)  # (B, C)
        lemma = (1.0 - loo_values * s).clamp_min(torch.finfo(torch.float64).tiny)
        # ln det Lambda - ln det Lambda_-i, pairing g_a with g'_a so each term is small
        base_ratio = torch.log1p((class_values[None, :] - loo_values)[:, :, None] * feature_values / scaled)
        logdet_term = base_ratio.sum(dim=(1, 2)) - torch.log(lemma).sum(-1)

        # g^T Lambda_-i^-1 g with g = r kron phi, by Sherman-Morrison in each eigen-direction of G
        rho_sq = (residual @ vectors) ** 2  # (Q_G^T r)_a^2
        mahalanobis = (rho_sq * s / lemma).sum(-1)

        # KL >= 0 in exact arithmetic; clamp the rounding of a difference of sums.
        return (0.5 * (trace_term + mahalanobis + logdet_term)).clamp_min(0).to(features.dtype)

    @staticmethod
    def memory_bytes(n_classes, n_features, element_size):
        return 3 * (n_classes**2 + n_features**2 + n_classes * n_features) * element_size


class DiagPosterior(Posterior):
    """Diagonal of the GGN: ``Lambda ~ diag(sum_i H_i[c, c] phi_id^2) + lambda I``.

    For LSI, ``Lambda_-i`` drops sample ``i``'s diagonal term, so the KL is a
    sum over the ``C D`` coordinates, non-negative term by term.
    """

    structure = HessianStructure.DIAG

    def __init__(self, mean, diagonal, prior_precision):
        super().__init__(mean, prior_precision)
        self.diagonal = diagonal  # (C, D)

    @classmethod
    def fit(cls, features, mean, prior_precision):
        probs = torch.softmax(features @ mean.T, dim=1)
        curvature = probs * (1.0 - probs)  # H_i[c, c], shape (N, C)
        diagonal = curvature.T @ (features * features) + prior_precision
        return cls(mean, diagonal, prior_precision)

    @property
    def logdet_precision(self):
        return torch.log(self.diagonal).sum()

    def dense_precision(self):
        return torch.diag(self.diagonal.reshape(-1))

    def row_bytes(self, element_size):
        return self.n_features * element_size + 8 * (self.n_features + 5 * self.n_classes * self.n_features)

    def one_step_lsi(self, features, probs, residual):
        """``Lambda_-i = Lambda - diag(H_i[c, c] phi_id^2)``, which stays >= lambda."""
        squared = (features * features).double()  # (B, D)
        probs, residual, diagonal = probs.double(), residual.double(), self.diagonal.double()
        removed = (probs * (1.0 - probs))[:, :, None] * squared[:, None, :]  # (B, C, D)
        loo_diagonal = (diagonal[None] - removed).clamp_min(self.prior_precision)
        # x - 1 - ln x with x = loo / full, written through the small difference.
        shrink = -removed / diagonal[None]
        gradient_sq = residual[:, :, None] ** 2 * squared[:, None, :]
        scores = 0.5 * ((shrink - torch.log1p(shrink)) + gradient_sq / loo_diagonal).sum(dim=(1, 2))
        return scores.to(features.dtype)

    @staticmethod
    def memory_bytes(n_classes, n_features, element_size):
        return 2 * n_classes * n_features * element_size


POSTERIORS: dict[HessianStructure, type[Posterior]] = {
    HessianStructure.FULL: FullPosterior,
    HessianStructure.KRON: KronPosterior,
    HessianStructure.DIAG: DiagPosterior,
}


def fit_posterior(
    structure: HessianStructure | str, features: torch.Tensor, mean: torch.Tensor, prior_precision: float
) -> Posterior:
    """Build the posterior of the given structure at ``mean``."""
    return POSTERIORS[HessianStructure(structure)].fit(features, mean, prior_precision)


def log_evidence(posterior: Posterior, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Laplace approximation of the log marginal likelihood ``ln p(y | X, lambda)``.

    ``ln Z = ln p(y | theta) + ln p(theta) + P/2 ln(2 pi) - 1/2 ln det Lambda``
    at the MAP ``theta``, which with the prior ``N(0, lambda^-1 I)`` is
    ``-sum_i CE_i - lambda/2 ||theta||^2 + P/2 ln lambda - 1/2 ln det Lambda``.
    """
    logits = features @ posterior.mean.T
    log_likelihood = -torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
    prior_precision = posterior.prior_precision
    log_prior = -0.5 * prior_precision * (posterior.mean**2).sum() + 0.5 * posterior.n_params * math.log(prior_precision)
    return float(log_likelihood + log_prior - 0.5 * posterior.logdet_precision)

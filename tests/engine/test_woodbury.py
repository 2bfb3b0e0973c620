import torch

from lsi_app.engine.woodbury import low_rank_downdate_lsi


def test_downdate_falls_back_when_cholesky_fails():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    residual = probs.clone()
    residual[:, 0] -= 1.0
    # K this large puts an eigenvalue of M above 1, which a covariance cannot
    # produce but float32 rounding or a bad structure can approach.
    blocks = torch.stack([100.0 * torch.eye(2, dtype=torch.float64), 1e-3 * torch.eye(2, dtype=torch.float64)])

    scores = low_rank_downdate_lsi(blocks, probs, residual)

    assert torch.isfinite(scores).all()
    assert (scores >= 0).all()
    assert scores[0] > scores[1]

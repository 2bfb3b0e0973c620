"""A small CNN trained in-app on small grayscale images; its penultimate layer gives features."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CNNConfig:
    """Training settings of the in-app CNN; every field enters the cache key.

    The defaults train to about 99% training accuracy on the digits in a few
    seconds on two CPU cores, while weight decay keeps the network from
    memorising every sample exactly.
    """

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    feature_dim: int = 64
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool, a hidden layer and a linear head.

    ``features`` returns the hidden layer (the input of the final Linear),
    of shape (n_samples, feature_dim).
    """

    def __init__(self, image_shape: tuple[int, int], n_classes: int, feature_dim: int) -> None:
        super().__init__()
        height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (height // 2) * (width // 2), feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images[:, None])  # (N, H, W) -> (N, 1, H, W) -> (N, feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    config: CNNConfig = CNNConfig(),
    *,
    device: torch.device | str = "cpu",
    progress: ProgressCallback = ignore_progress,
) -> SmallCNN:
    """Train :class:`SmallCNN` with Adam on cross-entropy, seeded for repeatable results.

    Parameters
    ----------
    images : ndarray of shape (n_samples, height, width)
    labels : ndarray of shape (n_samples,)
    n_classes : int
    config : CNNConfig
    device : torch device or str, default="cpu"
    progress : callable, optional
        Receives the completed fraction after each epoch.

    Returns
    -------
    SmallCNN in eval mode.
    """
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = SmallCNN(images.shape[1:], n_classes, config.feature_dim).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    x = torch.as_tensor(images, dtype=torch.float32, device=device)
    y = torch.as_tensor(labels, dtype=torch.int64, device=device)
    loss_fn = nn.CrossEntropyLoss()

    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(y), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        logger.debug("CNN epoch %d/%d: mean loss %.4f", epoch + 1, config.epochs, total / len(y))
        progress((epoch + 1) / config.epochs, f"Training CNN: epoch {epoch + 1}/{config.epochs}")
    model.eval()
    return model


@torch.no_grad()
def extract_features(
    model: SmallCNN,
    images: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> np.ndarray:
    """Return the penultimate-layer features of ``images``, shape (n_samples, feature_dim)."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.as_tensor(images[start : start + batch_size], dtype=torch.float32, device=device)
        outputs.append(model.features(batch).cpu())
    return torch.cat(outputs).numpy()

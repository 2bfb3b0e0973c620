"""A small CNN trained in-app on the dataset's labels; its penultimate layer gives features."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from lsi_app.data.samples import ArrayImages, ItemKind, SampleSet, fingerprint_of
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor
from lsi_app.models.extraction import extract_batches
from lsi_app.progress import ProgressCallback, ignore_progress, scaled

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
    of shape (n_samples, feature_dim). It takes grayscale images of shape
    (n_samples, height, width) when ``in_channels`` is 1, and images of
    shape (n_samples, in_channels, height, width) otherwise.
    """

    def __init__(self, image_shape: tuple[int, int], n_classes: int, feature_dim: int, in_channels: int = 1) -> None:
        super().__init__()
        height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1),
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
        if images.ndim == 3:
            images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
        return self.body(images)

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
    images : ndarray of shape (n_samples, height, width) or (n_samples, channels, height, width)
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
    if images.ndim == 3:
        image_shape, in_channels = images.shape[1:], 1
    else:
        image_shape, in_channels = images.shape[2:], images.shape[1]
    model = SmallCNN(image_shape, n_classes, config.feature_dim, in_channels).to(device)
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
    """Return the penultimate-layer features of ``images``, shape (n_samples, feature_dim).

    ``images`` has the shape that ``model`` was trained on, with any number of samples.
    """
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.as_tensor(images[start : start + batch_size], dtype=torch.float32, device=device)
        outputs.append(model.features(batch).cpu())
    return torch.cat(outputs).numpy()


#: Edge, in pixels, of the RGB images the in-app CNN trains on when the data
#: are not an in-memory grayscale array. 32x32 is the CIFAR size, at which a
#: network this small still learns object classes, and its hidden Linear
#: layer stays at 32 * 16 * 16 inputs, so an epoch takes seconds per
#: thousand images on a CPU.
CNN_IMAGE_SIZE = 32

#: Shares of the progress bar at the end of image loading and of training;
#: feature extraction takes the rest.
_LOAD_END, _TRAIN_END = 0.2, 0.9

#: The in-app CNN's inputs are at most 3x32x32, so 512 of them per forward
#: pass fit in memory. It is ``extract_features``' default, which keeps the
#: digits features identical to a direct ``extract_features(train_cnn(...))`` call.
CNN_EXTRACT_BATCH_SIZE = 512

UNLABELLED_ADVICE = (
    "the in-app CNN trains on labels; for unlabelled images pass a pretrained model, "
    "--model torchvision:ARCH:WEIGHTS or a TorchScript file"
)


def _small_rgb(image) -> torch.Tensor:
    # Squashing the whole image to a square keeps every part of it, where a centre crop would cut the edges.
    small = image.convert("RGB").resize((CNN_IMAGE_SIZE, CNN_IMAGE_SIZE), resample=Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32) / 255.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())  # (H, W, 3) -> (3, H, W)


def _is_grayscale_array(samples: SampleSet) -> bool:
    reader = samples.reader
    return isinstance(reader, ArrayImages) and reader.images.ndim == 3 and reader.images.dtype.kind == "f"


class CNNExtractor(FeatureExtractor):
    """Train :class:`SmallCNN` on the labelled samples and take its penultimate layer as features.

    An :class:`~lsi_app.data.samples.ArrayImages` set of float grayscale
    images (the digits) is used as it is, so the features equal
    ``extract_features(train_cnn(images, labels, n_classes, config))``. Any
    other image set is loaded item by item, converted to RGB, resized to
    :data:`CNN_IMAGE_SIZE` pixels square (aspect ratio not kept) and scaled
    to [0, 1]. Items that fail to load are skipped.

    Parameters
    ----------
    config : CNNConfig, default=CNNConfig()

    Notes
    -----
    The network depends on the training data, which are the samples given
    to :meth:`extract`. :meth:`fingerprint` covers the configuration only,
    so a cache key must also contain ``samples.fingerprint``, as the
    pipeline's features key does.
    """

    def __init__(self, config: CNNConfig = CNNConfig()) -> None:
        self.config = config
        self.source = "cnn"

    def fingerprint(self) -> str:
        return fingerprint_of(
            "cnn", tuple(sorted(self.config.as_dict().items())), CNN_IMAGE_SIZE, "squash-bilinear-rgb"
        )

    def extract(
        self,
        samples: SampleSet,
        *,
        device: torch.device,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressCallback = ignore_progress,
    ) -> Extraction:
        if samples.kind is not ItemKind.IMAGE:
            raise ValueError(
                f"the in-app CNN trains on images, but dataset {samples.name!r} has {samples.kind.value} items; "
                "use --model auto"
            )
        if samples.labels is None:
            raise ValueError(f"dataset {samples.name!r} has no labels: {UNLABELLED_ADVICE}")

        if _is_grayscale_array(samples):
            images = samples.images
            kept = np.arange(len(samples), dtype=np.int64)
            skipped = []
            train_start = 0.0
        else:
            images, kept, skipped = self._load_images(samples, batch_size, scaled(progress, 0.0, _LOAD_END))
            train_start = _LOAD_END
        if len(kept) == 0:
            return Extraction(features=np.empty((0, 0), dtype=np.float32), kept=kept, skipped=skipped)

        labels = samples.labels[kept]
        n_classes = max(samples.n_classes, int(labels.max()) + 1)
        model = train_cnn(
            images, labels, n_classes, self.config, device=device, progress=scaled(progress, train_start, _TRAIN_END)
        )
        progress(_TRAIN_END, "Extracting CNN features")
        features = extract_features(model, images, device=device, batch_size=CNN_EXTRACT_BATCH_SIZE)
        progress(1.0, f"Extracting CNN features: {len(kept)}/{len(kept)}")
        notes = [] if train_start == 0.0 else [f"the in-app CNN trained on {len(kept)} images resized to {CNN_IMAGE_SIZE}x{CNN_IMAGE_SIZE} RGB"]
        return Extraction(features=features.astype(np.float32, copy=False), kept=kept, skipped=skipped, notes=notes)

    @staticmethod
    def _load_images(
        samples: SampleSet, batch_size: int, progress: ProgressCallback
    ) -> tuple[np.ndarray, np.ndarray, list]:
        # NOTE: every image is held as float32 at 3x32x32 (12 KiB), so a million images need about 12 GiB.
        loaded = extract_batches(
            lambda batch: batch,
            samples,
            _small_rgb,
            device=torch.device("cpu"),
            batch_size=batch_size,
            progress=progress,
        )
        images = loaded.features.reshape(len(loaded.kept), 3, CNN_IMAGE_SIZE, CNN_IMAGE_SIZE)
        return images, loaded.kept, loaded.skipped

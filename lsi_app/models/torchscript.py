"""TorchScript archives as feature extractors."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from lsi_app.data.samples import ItemKind, SampleSet, fingerprint_of
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor
from lsi_app.models.extraction import (
    extract_batches,
    imagenet_transform,
    imagenet_transform_description,
    pool_features,
)
from lsi_app.models.weights import file_digest, is_torchscript
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Methods or submodules tried, in order, before ``forward``. timm models
#: name their backbone method ``forward_features``, and torchvision's VGG,
#: DenseNet, MobileNet and EfficientNet name their backbone submodule ``features``.
FEATURE_METHODS = ("forward_features", "features")


class TorchScriptExtractor(FeatureExtractor):
    """A TorchScript module whose ``forward_features``, ``features`` or ``forward`` gives the features.

    Parameters
    ----------
    path : Path
        An archive written by ``torch.jit.script(model).save(path)`` or
        ``torch.jit.trace(...).save(path)``, whatever its suffix.
    feature_layer : None
        Must be None. Forward hooks cannot be registered on TorchScript
        modules: in torch 2.14, ``register_forward_hook`` and
        ``register_forward_pre_hook`` on a loaded scripted or traced module
        and on its submodules raise ``RuntimeError: register_forward_hook is
        not supported on ScriptModules``. So a TorchScript model cannot be cut
        at a named layer.
    image_size : int, default=224
        Edge of the centre crop fed to the model, normalised as for ImageNet
        (see :func:`~lsi_app.models.extraction.imagenet_transform`).

    Notes
    -----
    Export the backbone without its classification head. When the module has
    neither ``forward_features`` nor ``features`` (a method exported with
    ``@torch.jit.export`` or a submodule), the output of ``forward`` is the
    features, which are the logits for a full classifier. 4-D outputs are
    averaged over height and width (see
    :func:`~lsi_app.models.extraction.pool_features`).
    """

    def __init__(self, path: Path, feature_layer: str | None = None, image_size: int = 224) -> None:
        self.path = Path(path)
        self.source = str(path)
        if feature_layer is not None:
            raise ValueError(
                f"feature layer {feature_layer!r} cannot be used with the TorchScript model {path}: TorchScript "
                "modules do not support forward hooks, so they cannot be cut at a named layer; export the "
                "sub-module that ends at that layer instead, e.g. torch.jit.script(model.backbone).save(...)"
            )
        if image_size < 1:
            raise ValueError(f"image size must be a positive number of pixels, got {image_size}")
        if not self.path.is_file():
            raise ValueError(f"TorchScript file {path} not found")
        if not is_torchscript(self.path):
            raise ValueError(
                f"{path} is not a TorchScript archive; export one with torch.jit.script(model).save(...)"
            )
        self.image_size = image_size
        with warnings.catch_warnings():
            # NOTE: torch 2.14 deprecates TorchScript in favour of torch.export; archives still load.
            warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=FutureWarning)
            self.module = torch.jit.load(str(self.path), map_location="cpu")
        self.module.eval()
        self.method = next((name for name in FEATURE_METHODS if callable(getattr(self.module, name, None))), "forward")
        self._digest: str | None = None
        logger.info("loaded TorchScript model %s; features from its %s", self.path, self.method)

    def fingerprint(self) -> str:
        if self._digest is None:
            self._digest = file_digest(self.path)
        return fingerprint_of(
            "torchscript", self._digest, self.method, imagenet_transform_description(self.image_size)
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
                f"{self.source} extracts image features, but dataset {samples.name!r} has {samples.kind.value} items"
            )
        self.module.to(device)
        self.module.eval()
        method = getattr(self.module, self.method)

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            return pool_features(method(inputs))

        extraction = extract_batches(
            forward,
            samples,
            imagenet_transform(self.image_size),
            device=device,
            batch_size=batch_size,
            progress=progress,
        )
        extraction.notes = [f"TorchScript model {self.path}: features from its {self.method} output"]
        return extraction

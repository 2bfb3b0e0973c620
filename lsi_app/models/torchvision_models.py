"""Pretrained torchvision classification models as feature extractors, without downloads."""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from lsi_app.data.samples import ItemKind, SampleSet, fingerprint_of
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor
from lsi_app.models.extraction import (
    extract_batches,
    imagenet_transform,
    imagenet_transform_description,
    pool_features,
)
from lsi_app.models.weights import file_digest, load_state_dict
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Keys, missing keys and names listed in one error message before "(+N more)".
_LISTED = 4

#: Builder options that torchvision's own builders set when they load
#: pretrained weights (torchvision 0.29, models/inception.py and
#: models/googlenet.py). ``transform_input`` rescales ImageNet-normalised
#: input to the [-1, 1] range the ported Google weights expect.
_PRETRAINED_BUILD_OPTIONS = {
    "inception_v3": {"transform_input": True, "init_weights": False},
    "googlenet": {"transform_input": True, "init_weights": False},
}

#: First key of the auxiliary classifier that the file has when it was saved with ``aux_logits=True``.
_AUX_KEY_PREFIXES = {"inception_v3": "AuxLogits.", "googlenet": "aux1."}

#: torchvision's rule for renaming old DenseNet keys such as
#: ``denselayer1.norm.1.weight`` to ``denselayer1.norm1.weight``
#: (copied from torchvision 0.29, models/densenet.py).
_DENSENET_KEY_PATTERN = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class _StopForward(Exception):
    """Raised by the feature hook so that layers after the feature layer do not run."""


def check_architecture(arch: str) -> str:
    """Return ``arch`` when it names a torchvision classification model, else raise ValueError."""
    names = list_models(module=torchvision.models)
    if arch in names:
        return arch
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else f"for example: {', '.join(names[:8])}"
    raise ValueError(
        f"unknown torchvision architecture {arch!r}; {hint} "
        "(torchvision.models.list_models(module=torchvision.models) lists all)"
    )


def hub_cache_path(arch: str) -> Path:
    """Return where ``torch.hub`` keeps the file of ``arch``'s DEFAULT weights.

    That is ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``.
    """
    weights = get_model_weights(arch).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _hash_prefix_note(path: Path, digest: str) -> list[str]:
    # torch.hub's check_hash reads file names as <name>-<first hex digits of the SHA-256>.<suffix>.
    match = re.search(r"-([a-f0-9]{6,})\.", path.name)
    if match and not digest.startswith(match.group(1)):
        return [
            f"{path} does not have the SHA-256 its name promises ({match.group(1)}...); "
            "it is not the file torchvision publishes"
        ]
    return []


def _rename_densenet_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state_dict.items():
        match = _DENSENET_KEY_PATTERN.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def _size_option(arch: str, image_size: int) -> dict:
    # Vision transformers size their position embeddings for one input size.
    if arch.startswith("vit_"):
        return {"image_size": image_size}
    if arch.startswith("maxvit_"):
        return {"input_size": (image_size, image_size)}
    return {}


def _build_options(arch: str, state_dict: dict[str, torch.Tensor], image_size: int) -> dict:
    options = dict(_PRETRAINED_BUILD_OPTIONS.get(arch, {}))
    if arch in _AUX_KEY_PREFIXES:
        options["aux_logits"] = any(key.startswith(_AUX_KEY_PREFIXES[arch]) for key in state_dict)
    options.update(_size_option(arch, image_size))
    return options


def _head_name(model: nn.Module) -> str:
    """Return the name of the classification head: the last Linear, or the last Conv2d (SqueezeNet)."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if linear:
        return linear[-1]
    convolutions = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if convolutions:
        return convolutions[-1]
    raise ValueError(f"{type(model).__name__} has no Linear or Conv2d layer to take features before; pass feature_layer")


def _default_head_name(arch: str, options: dict) -> str:
    # Building on the meta device allocates no memory. Builders that compute
    # with tensors while building (RegNet) fail there and are built on the CPU.
    try:
        with torch.device("meta"):
            return _head_name(get_model(arch, weights=None, **options))
    except NotImplementedError:
        return _head_name(get_model(arch, weights=None, **options))


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def _check_fit(
    arch: str,
    path: Path,
    model: nn.Module,
    state_dict: dict[str, torch.Tensor],
    optional_prefix: str | None,
) -> list[str]:
    """Raise a one-line ValueError when ``state_dict`` does not fit ``model``, else return notes.

    Keys under ``optional_prefix`` (the head, when features come from its
    input) may be missing from the file.
    """
    expected = model.state_dict()
    mismatched = [key for key in state_dict if key in expected and state_dict[key].shape != expected[key].shape]
    # State dicts older than version 2 of BatchNorm's format lack num_batches_tracked, and BatchNorm fills it in on load.
    missing = [key for key in expected if key not in state_dict and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state_dict if key not in expected]
    notes = []
    if optional_prefix and missing and all(key.startswith(optional_prefix) for key in missing):
        notes.append(f"{path} has no weights for the head {optional_prefix[:-1]}; features come from its input")
        missing = []
    if not (mismatched or missing or unexpected):
        return notes

    problems = []
    if mismatched:
        key = mismatched[0]
        problem = f"{key} has shape {_shape(state_dict[key])} in the file but {_shape(expected[key])} in the model"
        if len(mismatched) > 1:
            problem += f" (+{len(mismatched) - 1} more size mismatches)"
        problems.append(problem)
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    advice = "pass the architecture the file was saved from"
    if _size_option(arch, 0):
        advice += f", and the --image-size it was trained at, because {arch}'s shapes depend on it"
    raise ValueError(f"weights file {path} does not fit {arch}: {'; '.join(problems)}; {advice}")


def _cached_default_weights(arch: str) -> Path:
    path = hub_cache_path(arch)
    if not path.is_file():
        raise ValueError(
            f"the DEFAULT weights of {arch} are not in the torch hub cache at {path}, "
            "and downloads are disabled; copy the file there or pass a weights file "
            f"(--model torchvision:{arch}:FILE)"
        )
    return path


def _load_model(
    arch: str, path: Path, *, head_optional: bool, image_size: int
) -> tuple[nn.Module, dict, str, list[str]]:
    """Build ``arch`` to fit the state_dict in ``path`` and load it.

    Returns the model in eval mode, the builder options, the head's name and notes.
    """
    state_dict, notes = load_state_dict(path)
    if arch.startswith("densenet"):
        state_dict = _rename_densenet_keys(state_dict)
    options = _build_options(arch, state_dict, image_size)
    head = _default_head_name(arch, options)
    head_weight = state_dict.get(f"{head}.weight")
    if head_weight is not None:
        options["num_classes"] = int(head_weight.shape[0])

    model = get_model(arch, weights=None, **options)
    notes.extend(_check_fit(arch, path, model, state_dict, f"{head}." if head_optional else None))
    model.load_state_dict(state_dict, strict=False)  # _check_fit has rejected every mismatch
    model.eval()
    return model, options, head, notes


class TorchvisionExtractor(FeatureExtractor):
    """A torchvision classification model whose inner layer gives the features.

    Parameters
    ----------
    arch : str
        A name from ``torchvision.models.list_models(module=torchvision.models)``,
        for example ``"resnet18"``.
    weights_file : Path or None, default=None
        A state_dict saved with ``torch.save``, loaded weights-only. The number
        of classes is read from the head's weight, so a 10-class checkpoint
        loads. None uses the architecture's DEFAULT ImageNet weights, which
        must already be in the torch hub cache (see :func:`hub_cache_path`)
        because nothing is downloaded.
    feature_layer : str or None, default=None
        None takes the input of the last ``nn.Linear`` in ``named_modules()``
        order (the last Conv2d for SqueezeNet, which has no Linear). A module
        name such as ``"layer4"`` takes that module's output, through
        :func:`~lsi_app.models.extraction.pool_features`. A module called
        several times in one forward pass (such as a shared ReLU) gives its
        first output.
    image_size : int, default=224
        Edge of the centre crop fed to the model (see
        :func:`~lsi_app.models.extraction.imagenet_transform`). Vision
        transformers are built for this size, so it must match their weights.

    Notes
    -----
    The forward pass stops at the feature layer, so later layers cost nothing.
    Inception v3 and GoogLeNet are built as torchvision builds them for its
    pretrained weights, with ``transform_input=True``.
    """

    def __init__(
        self,
        arch: str,
        weights_file: Path | None = None,
        feature_layer: str | None = None,
        image_size: int = 224,
    ) -> None:
        self.arch = check_architecture(arch)
        if image_size < 1:
            raise ValueError(f"image size must be a positive number of pixels, got {image_size}")
        self.feature_layer = feature_layer
        self.image_size = image_size
        self._digest: str | None = None
        if weights_file is None:
            self.weights_path = _cached_default_weights(arch)
            self.source = f"torchvision:{arch}"
        else:
            self.weights_path = Path(weights_file)
            self.source = f"torchvision:{arch}:{weights_file}"

        self.model, self.build_options, head, self.notes = _load_model(
            arch, self.weights_path, head_optional=feature_layer is None, image_size=image_size
        )
        self._layer_name, self._use_input = self._resolve_layer(head, feature_layer)
        logger.info("loaded %s with weights from %s", arch, self.weights_path)
        if weights_file is None:
            self.notes.extend(_hash_prefix_note(self.weights_path, self._weights_digest()))

    def _resolve_layer(self, head: str, feature_layer: str | None) -> tuple[str, bool]:
        if feature_layer is None:
            return head, True
        names = [name for name, _ in self.model.named_modules() if name]
        if feature_layer in names:
            return feature_layer, False
        close = difflib.get_close_matches(feature_layer, names, n=4, cutoff=0.6)
        top_level = [name for name, _ in self.model.named_children()]
        hint = f"close matches: {', '.join(close)}; " if close else ""
        raise ValueError(
            f"unknown feature layer {feature_layer!r} for {self.arch}; {hint}top-level modules: "
            f"{', '.join(top_level)} (names as in model.named_modules(), e.g. layer4 or features.8)"
        )

    def _weights_digest(self) -> str:
        if self._digest is None:
            self._digest = file_digest(self.weights_path)
        return self._digest

    def fingerprint(self) -> str:
        layer = f"input of {self._layer_name}" if self._use_input else f"output of {self._layer_name}"
        return fingerprint_of(
            "torchvision",
            self.arch,
            torchvision.__version__,
            self._weights_digest(),
            tuple(sorted(self.build_options.items())),
            layer,
            imagenet_transform_description(self.image_size),
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
        self.model.to(device).eval()
        captured: list[torch.Tensor] = []

        def take_input(module: nn.Module, args: tuple) -> None:
            captured.append(args[0])
            raise _StopForward

        def take_output(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            captured.append(output)
            raise _StopForward

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            captured.clear()
            try:
                self.model(inputs)
            except _StopForward:
                pass
            if not captured:
                raise RuntimeError(f"{self.arch} did not call its layer {self._layer_name} in the forward pass")
            return pool_features(captured[0])

        layer = self.model.get_submodule(self._layer_name)
        if self._use_input:
            handle = layer.register_forward_pre_hook(take_input)
        else:
            handle = layer.register_forward_hook(take_output)
        try:
            extraction = extract_batches(
                forward,
                samples,
                imagenet_transform(self.image_size),
                device=device,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            handle.remove()
        extraction.notes = list(self.notes)
        return extraction

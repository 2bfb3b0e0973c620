"""Feature extractors: models that map samples to probe features.

:func:`open_model` turns a model source string into a :class:`FeatureExtractor`.
The accepted sources are:

- ``auto``: ``cnn`` for images, ``minilm`` for text, ``identity`` for feature vectors;
- ``cnn``: a small CNN trained in-app on the labels;
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings;
- ``identity``: the vectors of an embeddings dataset;
- ``torchvision:ARCH``: a torchvision model with its DEFAULT weights from the torch hub cache;
- ``torchvision:ARCH:WEIGHTS_FILE``: a torchvision model with a state_dict file
  (everything after the second colon is the path, so it may contain colons);
- a path to a TorchScript archive, detected by content whatever its suffix.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from lsi_app.data.samples import ItemKind
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction, FeatureExtractor
from lsi_app.models.cnn import CNNConfig, CNNExtractor, SmallCNN, extract_features, train_cnn
from lsi_app.models.identity import IdentityExtractor
from lsi_app.models.weights import PICKLED_MODEL_ADVICE, is_torchscript, load_state_dict


class ModelName(str, Enum):
    """Model sources given by name."""

    AUTO = "auto"
    CNN = "cnn"
    MINILM = "minilm"
    IDENTITY = "identity"


#: Model sources that ``--model`` accepts by name, for help text.
MODELS = tuple(name.value for name in ModelName)

#: Prefix of torchvision model sources: ``torchvision:ARCH[:WEIGHTS_FILE]``.
TORCHVISION_PREFIX = "torchvision:"

#: The model that ``auto`` resolves to for each item kind.
AUTO_MODELS = {ItemKind.IMAGE: ModelName.CNN, ItemKind.TEXT: ModelName.MINILM, ItemKind.VECTOR: ModelName.IDENTITY}

#: The sources that fit each item kind, for error messages.
FITTING_MODELS = {
    ItemKind.IMAGE: "cnn, torchvision:ARCH[:WEIGHTS_FILE] or a TorchScript file",
    ItemKind.TEXT: "minilm",
    ItemKind.VECTOR: "identity",
}

#: The item kind that each named model extracts from.
_NAMED_MODEL_KINDS = {ModelName.CNN: ItemKind.IMAGE, ModelName.MINILM: ItemKind.TEXT, ModelName.IDENTITY: ItemKind.VECTOR}


def _unknown_source(source: str) -> ValueError:
    hint = ""
    try:
        from lsi_app.models.torchvision_models import check_architecture

        check_architecture(source)
        hint = f" (for the torchvision model, pass torchvision:{source})"
    except ValueError:
        pass
    return ValueError(
        f"unknown model source {source!r}{hint}; available: {', '.join(MODELS)}, "
        "torchvision:ARCH[:WEIGHTS_FILE], or the path of a TorchScript file"
    )


def _parse_torchvision(source: str) -> tuple[str, Path | None]:
    arch, _, weights = source[len(TORCHVISION_PREFIX) :].partition(":")
    if not arch:
        raise ValueError(f"model source {source!r} names no architecture; pass torchvision:ARCH, e.g. torchvision:resnet18")
    return arch, (Path(weights).expanduser() if weights else None)


def _classify_file(path: Path) -> None:
    """Raise ValueError unless ``path`` is a TorchScript archive, saying what it is instead."""
    if is_torchscript(path):
        return
    # load_state_dict raises the errors for pickled model objects and unreadable files.
    load_state_dict(path)
    raise ValueError(
        f"{path} contains a state_dict without an architecture; pass --model torchvision:ARCH:{path}"
    )


def _source_kind(source: str) -> ItemKind | None:
    """Return the item kind that ``source`` extracts from, or None for ``auto``; raise ValueError if invalid."""
    if source in MODELS:
        name = ModelName(source)
        return None if name is ModelName.AUTO else _NAMED_MODEL_KINDS[name]
    if source.startswith(TORCHVISION_PREFIX):
        from lsi_app.models.torchvision_models import check_architecture

        arch, weights = _parse_torchvision(source)
        check_architecture(arch)
        if weights is not None and not weights.is_file():
            raise ValueError(f"weights file {weights} in model source {source!r} not found")
        return ItemKind.IMAGE
    path = Path(source).expanduser()
    if not path.is_file():
        raise _unknown_source(source)
    _classify_file(path)
    return ItemKind.IMAGE


def _check_kind(source: str, source_kind: ItemKind | None, kind: ItemKind) -> None:
    if source_kind is not None and source_kind is not kind:
        raise ValueError(
            f"model source {source!r} does not fit {kind.value} data; use {FITTING_MODELS[kind]} (or auto)"
        )


def check_model_source(source: str, kind: ItemKind | None = None) -> None:
    """Raise ValueError naming the problem and the choices when ``source`` is not a valid model source.

    Parameters
    ----------
    source : str
        See the module documentation for the syntax.
    kind : ItemKind or None, default=None
        The kind of the data to extract from; when given, sources that do
        not fit it are rejected too.

    Notes
    -----
    Loads no model. A file path is read weights-only to tell a state_dict
    from a pickled model object.
    """
    source_kind = _source_kind(source)
    if kind is not None:
        _check_kind(source, source_kind, ItemKind(kind))


def resolve_model_source(source: str, kind: ItemKind) -> str:
    """Return ``source`` with ``auto`` replaced by the default model for ``kind``."""
    if source == ModelName.AUTO.value:
        return AUTO_MODELS[ItemKind(kind)].value
    return source


def open_model(
    source: str,
    kind: ItemKind,
    *,
    feature_layer: str | None = None,
    image_size: int = 224,
    cnn_config: CNNConfig = CNNConfig(),
) -> FeatureExtractor:
    """Open the feature extractor named by ``source`` for data of ``kind``.

    Parameters
    ----------
    source : str
        A model source (see the module documentation); ``auto`` is resolved with ``kind``.
    kind : ItemKind
        The kind of the items to extract from.
    feature_layer : str or None, default=None
        A module name for torchvision models; None takes each model's default layer.
    image_size : int, default=224
        Crop edge in pixels for torchvision and TorchScript models.
    cnn_config : CNNConfig, default=CNNConfig()
        Training settings of the in-app CNN.

    Returns
    -------
    FeatureExtractor
        With ``source`` set to the string given.

    Raises
    ------
    ValueError
        For an invalid source, a source that does not fit ``kind``, a
        ``feature_layer`` for a model without layers to choose, or a
        weights file that cannot be loaded safely.
    """
    kind = ItemKind(kind)
    resolved = resolve_model_source(source, kind)
    _check_kind(source, _source_kind(resolved), kind)
    if feature_layer is not None and resolved in MODELS:
        raise ValueError(
            f"a feature layer ({feature_layer!r}) applies to torchvision and TorchScript models, not to {resolved}; "
            "drop --feature-layer"
        )

    if resolved == ModelName.CNN.value:
        extractor: FeatureExtractor = CNNExtractor(cnn_config)
    elif resolved == ModelName.IDENTITY.value:
        extractor = IdentityExtractor()
    elif resolved == ModelName.MINILM.value:
        from lsi_app.models.text import MiniLMExtractor

        extractor = MiniLMExtractor()
    elif resolved.startswith(TORCHVISION_PREFIX):
        from lsi_app.models.torchvision_models import TorchvisionExtractor

        arch, weights = _parse_torchvision(resolved)
        extractor = TorchvisionExtractor(arch, weights, feature_layer=feature_layer, image_size=image_size)
    else:
        from lsi_app.models.torchscript import TorchScriptExtractor

        extractor = TorchScriptExtractor(Path(resolved).expanduser(), feature_layer=feature_layer, image_size=image_size)
    extractor.source = source
    return extractor


__all__ = [
    "AUTO_MODELS",
    "DEFAULT_BATCH_SIZE",
    "MODELS",
    "PICKLED_MODEL_ADVICE",
    "TORCHVISION_PREFIX",
    "CNNConfig",
    "CNNExtractor",
    "Extraction",
    "FeatureExtractor",
    "IdentityExtractor",
    "ModelName",
    "SmallCNN",
    "check_model_source",
    "extract_features",
    "open_model",
    "resolve_model_source",
    "train_cnn",
]

"""Feature extractors: models that map samples to probe features."""

from lsi_app.models.cnn import CNNConfig, SmallCNN, extract_features, train_cnn

#: Model sources that ``--model`` accepts, by name.
MODELS = ("cnn",)


def check_model_source(source: str) -> None:
    """Raise ValueError naming the choices when ``source`` is not a known model source."""
    if source not in MODELS:
        raise ValueError(f"unknown model source {source!r}; available: {', '.join(MODELS)}")


__all__ = ["CNNConfig", "MODELS", "SmallCNN", "check_model_source", "extract_features", "train_cnn"]

"""The interface shared by every feature extractor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from lsi_app.data.samples import SampleSet, SkippedItem
from lsi_app.progress import ProgressCallback, ignore_progress

#: Items per forward pass. A batch of 64 RGB images at 224x224 is 38 MiB of
#: float32 input, small enough for any GPU and for CPU memory, and larger
#: batches gain little throughput.
DEFAULT_BATCH_SIZE = 64


@dataclass
class Extraction:
    """Features of the items that loaded, with what was skipped.

    Attributes
    ----------
    features : ndarray of shape (n_kept, n_features), dtype float32
        Row ``r`` belongs to sample ``kept[r]``. There are no rows when
        every item was skipped, and then ``n_features`` is 0 for extractors
        that learn the width from the model output.
    kept : ndarray of shape (n_kept,), dtype int64
        Ascending positions into the extracted :class:`SampleSet`.
    skipped : list of SkippedItem
        Items whose loading raised :class:`~lsi_app.data.samples.ItemError`,
        with the reasons.
    notes : list of str
        One-line facts to show the user, such as a key prefix that was stripped.
    """

    features: np.ndarray
    kept: np.ndarray
    skipped: list[SkippedItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FeatureExtractor(ABC):
    """Maps each item of a sample set to one feature vector.

    Attributes
    ----------
    source : str
        The model source as the user gave it, for example ``"torchvision:resnet18:w.pt"``.
    """

    source: str

    @abstractmethod
    def fingerprint(self) -> str:
        """Return a hex digest of everything that determines the features.

        That is the weights, the architecture, the feature layer and the
        input transform. The same inputs give the same digest in every process.
        """

    @abstractmethod
    def extract(
        self,
        samples: SampleSet,
        *,
        device: torch.device,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressCallback = ignore_progress,
    ) -> Extraction:
        """Compute the features of every item of ``samples`` that loads.

        Parameters
        ----------
        samples : SampleSet
        device : torch.device
            Where the model runs.
        batch_size : int, default=DEFAULT_BATCH_SIZE
            Items per forward pass.
        progress : callable, optional
            Receives the completed fraction and a message after each batch.

        Returns
        -------
        Extraction
        """

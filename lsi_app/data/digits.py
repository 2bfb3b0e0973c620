"""Built-in dataset: scikit-learn's handwritten digits (1,797 images of 8x8 pixels).

The data ship inside scikit-learn, so this source needs no download.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from lsi_app.data.samples import ArrayImages, SampleSet, fingerprint_of

#: Pixel values in ``load_digits`` are ink counts from 0 to 16.
_MAX_INK = 16.0


def load_digits_samples() -> SampleSet:
    """Load scikit-learn's digits as a :class:`SampleSet` with ids ``digits-0000`` ...."""
    bunch = load_digits()
    images = (bunch.images / _MAX_INK).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    sample_ids = np.array([f"digits-{i:04d}" for i in range(len(labels))])
    class_names = tuple(str(name) for name in bunch.target_names)
    return SampleSet(
        name="digits",
        sample_ids=sample_ids,
        labels=labels,
        class_names=class_names,
        reader=ArrayImages(images),
        fingerprint=fingerprint_of("digits", images, labels, class_names),
    )

"""Dataset source: CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST read from local torchvision folders.

The files are opened with the torchvision dataset classes and
``download=False``, so this source never downloads. The user copies the
files into the expected folder first. The error for a missing dataset
names that folder and its files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

from lsi_app.data.samples import ArrayImages, SampleSet, fingerprint_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _DatasetSpec:
    """The torchvision class of one dataset and the wording of its error messages."""

    title: str
    dataset_class: type
    source_url: str
    file_format: str

    @property
    def is_cifar(self) -> bool:
        return issubclass(self.dataset_class, CIFAR10)

    def folder(self, root: Path) -> Path:
        """Return the folder under ``root`` where torchvision expects the files."""
        if self.is_cifar:
            return root / self.dataset_class.base_folder
        # MNIST.raw_folder is <root>/<class name>/raw in torchvision 0.29.1.
        return root / self.dataset_class.__name__ / "raw"

    def file_names(self) -> list[str]:
        """Return the files that torchvision 0.29.1 requires before it opens either split."""
        if self.is_cifar:
            batches = self.dataset_class.train_list + self.dataset_class.test_list
            return [name for name, _md5 in batches] + [self.dataset_class.meta["filename"]]
        # MNIST._check_exists requires every resource uncompressed: the URL's base name without ".gz".
        return [os.path.splitext(os.path.basename(url))[0] for url, _md5 in self.dataset_class.resources]


#: Datasets by canonical name: the lower-case name without hyphens or underscores.
DATASET_SPECS = {
    "cifar10": _DatasetSpec(
        "CIFAR-10", CIFAR10, "https://www.cs.toronto.edu/~kriz/cifar.html", "the python version, extracted"
    ),
    "cifar100": _DatasetSpec(
        "CIFAR-100", CIFAR100, "https://www.cs.toronto.edu/~kriz/cifar.html", "the python version, extracted"
    ),
    "mnist": _DatasetSpec(
        "MNIST", MNIST, "https://ossci-datasets.s3.amazonaws.com/mnist/", "the IDX files, decompressed with gunzip"
    ),
    "fashionmnist": _DatasetSpec(
        "Fashion-MNIST",
        FashionMNIST,
        "https://github.com/zalandoresearch/fashion-mnist",
        "the IDX files, decompressed with gunzip",
    ),
}

#: Digits in the running number of a sample id; the largest split (MNIST train) has 60,000 images.
_ID_DIGITS = 5


def canonical_dataset_name(name: str) -> str:
    """Return the key of ``name`` in :data:`DATASET_SPECS`, for example ``"fashionmnist"`` for ``"Fashion-MNIST"``.

    Raises
    ------
    ValueError
        If ``name`` is not one of the supported datasets; the message lists them.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in DATASET_SPECS:
        raise ValueError(f"unknown torchvision dataset {name!r}; choose one of {', '.join(DATASET_SPECS)}")
    return key


def _not_found_message(spec: _DatasetSpec, root: Path, error: Exception) -> str:
    folder = spec.folder(root)
    names = spec.file_names()
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        # Listing the missing files separately only helps when some of them are present.
        missing_part = f"; missing {', '.join(missing)}" if len(missing) < len(names) else ""
        return (
            f"{spec.title} not found under {root}: expected {folder}/ with {', '.join(names)} "
            f"({spec.file_format}, from {spec.source_url}){missing_part}. "
            "Downloads are disabled, so copy the files there"
        )
    # Every file exists, so torchvision rejected their content. CIFAR checks MD5 sums of all files.
    return (
        f"{spec.title} files in {folder} could not be read by torchvision ({error}); "
        f"replace them with unmodified copies of {spec.file_format} from {spec.source_url}"
    )


def open_torchvision_dataset(name: str, root: Path, *, train: bool = True) -> SampleSet:
    """Open a CIFAR-10, CIFAR-100, MNIST or Fashion-MNIST split from local files.

    Parameters
    ----------
    name : str
        ``cifar10``, ``cifar100``, ``mnist`` or ``fashionmnist``, in any case.
        Hyphens and underscores are ignored, so ``fashion-mnist`` also works.
    root : Path
        The folder that contains the dataset folder, as torchvision's ``root``:
        ``<root>/cifar-10-batches-py/``, ``<root>/cifar-100-python/``,
        ``<root>/MNIST/raw/`` or ``<root>/FashionMNIST/raw/``.
    train : bool, default True
        Open the training split; False opens the test split.

    Returns
    -------
    SampleSet
        An :class:`ArrayImages` reader of uint8 images, shape (n_samples, 32, 32, 3)
        for CIFAR and (n_samples, 28, 28) for MNIST and Fashion-MNIST. Labels are
        torchvision's targets (CIFAR-100: the 100 fine labels), class names its
        ``classes``. Ids look like ``cifar10-train-00042``, and the ``split``
        column contains ``train`` or ``test``.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or the files are missing or unreadable; the
        message names the expected folder and files.
    """
    key = canonical_dataset_name(name)
    spec = DATASET_SPECS[key]
    root = Path(root)
    split = "train" if train else "test"

    # torchvision 0.29.1 raises RuntimeError for missing or corrupted files. A damaged MNIST
    # IDX file fails inside its parser with AssertionError, TypeError or ValueError instead.
    try:
        dataset = spec.dataset_class(str(root), train=train, download=False)
    except (RuntimeError, AssertionError, TypeError, ValueError) as error:
        raise ValueError(_not_found_message(spec, root, error)) from error

    if spec.is_cifar:
        images = np.ascontiguousarray(dataset.data, dtype=np.uint8)
        labels = np.asarray(dataset.targets, dtype=np.int64)
    else:
        images = np.ascontiguousarray(dataset.data.numpy(), dtype=np.uint8)
        labels = dataset.targets.numpy().astype(np.int64)
    class_names = tuple(str(class_name) for class_name in dataset.classes)

    n_samples = len(labels)
    sample_ids = np.array([f"{key}-{split}-{i:0{_ID_DIGITS}d}" for i in range(n_samples)])
    logger.info("opened %s %s split from %s: %d images", spec.title, split, root, n_samples)
    return SampleSet(
        name=f"torchvision:{key}:{root}",
        sample_ids=sample_ids,
        labels=labels,
        class_names=class_names,
        reader=ArrayImages(images),
        fingerprint=fingerprint_of(key, split, images, labels),
        columns={"split": np.full(n_samples, split)},
    )

"""The batched loop shared by the extractors: load items, run the model, collect features."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from lsi_app.data.samples import ItemError, SampleSet, SkippedItem
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Threads that load and transform items. PIL releases the GIL while it
#: decodes and resizes, so two threads prepare the next batch while the model
#: runs on the current one. More threads would compete with torch's own
#: intra-op threads for the CPU cores.
LOADER_THREADS = 2

#: Per-channel RGB mean and standard deviation of ImageNet, the defaults of
#: the evaluation transform of torchvision's classification weights
#: (torchvision 0.29, transforms/_presets.py, ``ImageClassification``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Ratio of the resize edge to the crop edge in torchvision's ImageNet
#: evaluation transform (resize to 256, centre crop 224).
RESIZE_TO_CROP_RATIO = 256 / 224


def imagenet_transform(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Build torchvision's ImageNet evaluation transform for a crop of ``image_size`` pixels.

    The shorter side is resized (bilinear, antialiased) to
    ``round(image_size * 256 / 224)``, the centre ``image_size`` square is
    cropped, and the pixels are scaled to [0, 1] and normalised with
    :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`.

    Returns
    -------
    callable
        Maps an RGB ``PIL.Image.Image`` to a float32 tensor of shape (3, image_size, image_size).
    """
    from torchvision import transforms  # imported here so that `import lsi_app.models` does not load torchvision

    return transforms.Compose(
        [
            transforms.Resize(
                round(image_size * RESIZE_TO_CROP_RATIO),
                interpolation=transforms.InterpolationMode.BILINEAR,
                antialias=True,
            ),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def imagenet_transform_description(image_size: int) -> tuple:
    """Return the values that determine :func:`imagenet_transform`, for fingerprints."""
    return ("imagenet-eval", round(image_size * RESIZE_TO_CROP_RATIO), image_size, "bilinear", IMAGENET_MEAN, IMAGENET_STD)


def pool_features(outputs: torch.Tensor) -> torch.Tensor:
    """Flatten layer outputs to (N, D), averaging 4-D (N, C, H, W) outputs over H and W.

    Global average pooling keeps D at the channel count, for example 512
    for ResNet-18's ``layer4``, instead of C*H*W.
    """
    if not isinstance(outputs, torch.Tensor):
        raise ValueError(f"the feature layer returned {type(outputs).__name__}; choose a layer that returns a tensor")
    if outputs.ndim == 4:
        return outputs.mean(dim=(2, 3))
    return outputs.reshape(outputs.shape[0], -1)


def item_name(samples: SampleSet, index: int) -> str:
    """Return the file path of item ``index`` where there is one, else its sample id."""
    if samples.paths is not None:
        return str(samples.paths[index])
    return str(samples.sample_ids[index])


@dataclass
class LoadedBatch:
    """The items of one batch that loaded, in sample order, and those that did not."""

    positions: list[int]
    items: list
    skipped: list[SkippedItem]
    n_attempted: int


def _load_one(samples: SampleSet, index: int, transform: Callable) -> object:
    try:
        return transform(samples.reader.load(index))
    except ItemError as error:
        return SkippedItem(item_name(samples, index), str(error))


def iter_loaded_batches(
    samples: SampleSet,
    transform: Callable = lambda item: item,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[LoadedBatch]:
    """Load and transform the items of ``samples`` in batches, one batch ahead of the caller.

    Items whose loading raises :class:`ItemError` come back in
    ``LoadedBatch.skipped`` with the error message as the reason. Batches
    come in sample order whatever order the threads finish in. At most two
    batches of loaded items exist at a time: the one yielded and the next.
    ``samples.reader.load`` is called from :data:`LOADER_THREADS` threads at
    once, so readers must be thread-safe.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    n_items = len(samples)
    starts = range(0, n_items, batch_size)
    pool = ThreadPoolExecutor(max_workers=LOADER_THREADS, thread_name_prefix="lsi-load")

    def submit(start: int) -> list[Future]:
        stop = min(start + batch_size, n_items)
        return [pool.submit(_load_one, samples, index, transform) for index in range(start, stop)]

    try:
        pending = submit(starts[0]) if n_items else []
        for number, start in enumerate(starts):
            following = submit(starts[number + 1]) if number + 1 < len(starts) else []
            batch = LoadedBatch(positions=[], items=[], skipped=[], n_attempted=len(pending))
            for offset, future in enumerate(pending):
                result = future.result()
                if isinstance(result, SkippedItem):
                    batch.skipped.append(result)
                else:
                    batch.positions.append(start + offset)
                    batch.items.append(result)
            yield batch
            pending = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def log_skipped(skipped: list[SkippedItem], n_items: int) -> None:
    """Log how many items were skipped, with the first reason, once per extraction."""
    if skipped:
        first = skipped[0]
        logger.warning(
            "skipped %d of %d items that failed to load; first: %s: %s", len(skipped), n_items, first.item, first.reason
        )


def _as_feature_rows(outputs: torch.Tensor) -> np.ndarray:
    if not isinstance(outputs, torch.Tensor):
        raise ValueError(f"the model returned {type(outputs).__name__}; a feature layer must output a tensor")
    return outputs.detach().reshape(outputs.shape[0], -1).float().cpu().numpy()


def extract_batches(
    module_fn: Callable[[torch.Tensor], torch.Tensor],
    samples: SampleSet,
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback = ignore_progress,
) -> Extraction:
    """Run ``module_fn`` over every item of ``samples`` in batches and collect its outputs.

    Each batch is loaded with ``samples.reader.load`` and ``transform``,
    stacked, moved to ``device`` and passed to ``module_fn`` under
    ``torch.inference_mode()``. On CUDA the forward pass runs under float16
    autocast. Outputs are flattened to one row per item and copied as float32
    into one preallocated array, so memory use is two batches of inputs plus
    the output array.

    Parameters
    ----------
    module_fn : callable
        Maps a float tensor of shape (batch, ...) on ``device`` to a tensor
        with one row per item. An ``nn.Module`` is put in eval mode first.
        Callers that pass a closure put their model in eval mode and on
        ``device`` themselves.
    samples : SampleSet
    transform : callable
        Maps a loaded item to a tensor. Every item must give the same shape.
    device : torch.device
    batch_size : int, default=DEFAULT_BATCH_SIZE
    progress : callable, optional
        Receives the completed fraction and ``"Extracting features: DONE/TOTAL"`` after each batch.

    Returns
    -------
    Extraction
        Without notes. ``features`` has shape (0, 0) when no item loaded.
    """
    if isinstance(module_fn, nn.Module):
        module_fn.eval()
    n_items = len(samples)
    features: np.ndarray | None = None
    kept: list[int] = []
    skipped: list[SkippedItem] = []
    n_done = 0
    # NOTE: the CUDA path (float16 autocast) has not been run by the tests, which run on CPU only.
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda")

    for batch in iter_loaded_batches(samples, transform, batch_size):
        skipped.extend(batch.skipped)
        if batch.items:
            inputs = torch.stack(batch.items).to(device)
            with torch.inference_mode(), autocast:
                rows = _as_feature_rows(module_fn(inputs))
            if features is None:
                features = np.empty((n_items, rows.shape[1]), dtype=np.float32)
            features[len(kept) : len(kept) + len(rows)] = rows
            kept.extend(batch.positions)
        n_done += batch.n_attempted
        progress(n_done / n_items, f"Extracting features: {n_done}/{n_items}")

    log_skipped(skipped, n_items)
    if features is None:
        features = np.empty((0, 0), dtype=np.float32)
    elif len(kept) < n_items:
        features.resize((len(kept), features.shape[1]), refcheck=False)  # shrinks in place, no copy
    return Extraction(features=features, kept=np.asarray(kept, dtype=np.int64), skipped=skipped)

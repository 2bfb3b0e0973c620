"""Thumbnails for image grids."""

from __future__ import annotations

import numpy as np


def thumbnail(image: np.ndarray, size: int = 64) -> np.ndarray:
    """Upscale a small grayscale image by pixel repetition into a uint8 RGB thumbnail.

    Parameters
    ----------
    image : ndarray of shape (height, width)
        Intensities in [0, 1], 1 = ink. Ink is drawn light on dark.
    size : int, default=64
        Target edge length in pixels; the scale factor is ``size // max(height, width)``
        (at least 1), so small digits stay sharp instead of blurred.

    Returns
    -------
    ndarray of shape (height * s, width * s, 3), dtype uint8
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    factor = max(1, size // max(image.shape))
    gray = np.clip(image, 0.0, 1.0)
    pixels = np.round(gray * 255).astype(np.uint8)
    large = np.kron(pixels, np.ones((factor, factor), dtype=np.uint8))
    return np.repeat(large[:, :, None], 3, axis=2)

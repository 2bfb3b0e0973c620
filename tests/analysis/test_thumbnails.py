import numpy as np
import pytest

from lsi_app.analysis import thumbnail


def test_thumbnail_scales_by_pixel_repetition():
    image = np.array([[0.0, 1.0], [0.5, 2.0]], dtype=np.float32)

    result = thumbnail(image, size=8)

    assert result.shape == (8, 8, 3)
    assert result.dtype == np.uint8
    assert (result[:4, :4] == 0).all()
    assert (result[:4, 4:] == 255).all()
    assert (result[4:, :4] == 128).all()
    assert (result[4:, 4:] == 255).all()  # clipped to 1


def test_thumbnail_never_shrinks_and_rejects_colour():
    assert thumbnail(np.zeros((100, 50)), size=64).shape == (100, 50, 3)
    with pytest.raises(ValueError, match="2-D grayscale"):
        thumbnail(np.zeros((4, 4, 3)))

import math

import numpy as np
import pytest

from modipick.client.inputs import JPEG_MAGIC, PNG_MAGIC, to_input


def test_encoded_images_are_sent_as_they_are():
    png = PNG_MAGIC + b"rest-of-file"
    assert to_input(png).encoded_image == png
    jpeg = JPEG_MAGIC + b"\xe0rest"
    assert to_input(bytearray(jpeg)).encoded_image == jpeg


@pytest.mark.parametrize("data, message", [(b"", "empty"), (b"GIF89a....", "neither PNG nor JPEG")])
def test_bad_bytes_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        to_input(data)


@pytest.mark.parametrize("shape, sent", [((8, 8), [1, 8, 8, 1]), ((8, 8, 1), [1, 8, 8, 1]),
                                         ((1, 8, 8, 3), [1, 8, 8, 3])])
def test_arrays_become_one_image_batches(shape, sent):
    arr = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    tensor = to_input(arr).tensor
    assert list(tensor.shape) == sent and tensor.dtype == "float32"
    back = np.frombuffer(tensor.content, np.float32).reshape(sent)
    assert np.array_equal(back.reshape(shape), arr.astype(np.float32))


def test_uint8_stays_uint8():
    tensor = to_input(np.full((4, 4), 200, np.uint8)).tensor
    assert tensor.dtype == "uint8" and tensor.content == bytes([200]) * 16


@pytest.mark.parametrize("value, message", [
    (np.zeros((2, 8, 8, 1)), "one image"), (np.zeros(8), "one image"),
    (np.array([[np.nan, 1.0]]), "NaN"), ("image.png", "numpy array")])
def test_unusable_values_are_refused(value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        to_input(value)

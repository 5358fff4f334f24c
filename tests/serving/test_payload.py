"""Request parsing of the local server (imgclf.serving.payload), without a server: forms, ranges, b64."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from imgclf.serving.payload import BadRequest, parse_request


def _b64(image) -> str:
    return base64.b64encode(np.asarray(image, np.uint8).tobytes()).decode()


# --- request checks without a server -------------------------------------------------------------

IMG = [[0] * 28] * 28


@pytest.mark.parametrize("instances, needle", [
    ([{"images": IMG}, IMG], "mix objects and arrays"),
    ([IMG, {"images": IMG}], "mix objects and arrays"),
])
def test_parse_rejects_mixed_instance_forms(instances, needle):
    with pytest.raises(BadRequest, match=needle):
        parse_request({"instances": instances})


@pytest.mark.parametrize("value, needle", [
    (1e300, "1e+300"), (float("nan"), "nan"), (float("inf"), "inf"), (-1, "-1"), (255.5, "255.5")])
@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_parse_rejects_non_finite_and_out_of_range_pixels(key, value, needle):
    img = [row[:] for row in IMG]
    img[3][4] = value
    with pytest.raises(BadRequest, match=r"0\.\.255") as exc:
        parse_request({key: [IMG, img]})
    assert needle in str(exc.value) and key in str(exc.value)


def test_parse_accepts_full_pixel_range():
    img = [[0.0] * 14 + [255.0] * 14] * 28
    parsed = parse_request({"instances": [img]})
    assert parsed.images.dtype == np.float32 and parsed.images.max() == 255


def test_parse_b64_matches_the_json_numbers():
    img = np.arange(784, dtype=np.uint8).reshape(28, 28)
    from_b64 = parse_request({"inputs": [{"b64": _b64(img)}, {"b64": _b64(img[::-1])}]})
    from_json = parse_request({"inputs": [img.tolist(), img[::-1].tolist()]})
    assert from_b64.columnar and from_b64.images.dtype == np.float32
    np.testing.assert_array_equal(from_b64.images, from_json.images)
    with pytest.raises(BadRequest, match="exceeds the limit of 1"):
        parse_request({"instances": [{"b64": _b64(img)}] * 2}, max_batch=1)

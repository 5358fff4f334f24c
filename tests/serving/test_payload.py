"""Request parsing of the local server (imgclf.serving.payload), without a server: forms, ranges, b64, the fast path."""

from __future__ import annotations

import base64
import json

import numpy as np
import orjson
import pytest

from imgclf.serving.payload import BadRequest, _dense_numbers, _parse_general, parse_request


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


# --- the fast path for integer arrays agrees with the general parser ------------------------------

def _both_paths(body: bytes, max_batch: int = 1024):
    """(fast result or None, general result or the BadRequest it raised)."""
    try:
        general = _parse_general(body, max_batch)
    except BadRequest as exc:
        general = exc
    return _dense_numbers(body, max_batch), general


def _assert_same(fast, general):
    assert not isinstance(general, BadRequest), f"fast path accepted a body the general path rejects: {general}"
    assert (fast.columnar, fast.signature, fast.images.dtype) == (general.columnar, general.signature, general.images.dtype)
    np.testing.assert_array_equal(fast.images, general.images)


RNG_IMAGES = np.random.default_rng(0).integers(0, 256, (3, 28, 28))


@pytest.mark.parametrize("key", ["instances", "inputs"])
@pytest.mark.parametrize("signature", [None, "serving_default", "serving_uint8"])
@pytest.mark.parametrize("encode", ["orjson", "json spaces", "json indent", "4d", "signature first"])
def test_fast_path_reads_plain_integer_bodies_like_the_general_path(key, signature, encode):
    images = RNG_IMAGES[..., None] if encode == "4d" else RNG_IMAGES
    body = {key: images.tolist()}
    if signature:
        body = {"signature_name": signature, **body} if encode == "signature first" else {**body, "signature_name": signature}
    raw = orjson.dumps(body) if encode in ("orjson", "4d", "signature first") else \
        json.dumps(body, indent=1 if encode == "json indent" else None).encode()
    fast, general = _both_paths(raw)
    assert fast is not None, "the usual integer body must take the fast path"
    _assert_same(fast, general)
    assert parse_request(raw).images.shape == (3, 28, 28)


@pytest.mark.parametrize("body", [
    {"instances": [[[0.5] * 28] * 28]}, {"instances": [[[-1] * 28] * 28]}, {"instances": [[[256] * 28] * 28]},
    {"instances": [[[1000] * 28] * 28]}, {"instances": [{"images": [[0] * 28] * 28}]}, {"inputs": {"images": [[[0] * 28] * 28]}},
    {"instances": [[[0] * 28] * 28], "signature_name": "nope"}, {"instances": [[[0] * 28] * 28], "extra": 1},
    {"instances": []}, {"instances": [[[0] * 27] * 28]}, {"instances": [[[0] * 28] * 28]} | {"signature_name": None},
])
def test_fast_path_leaves_other_bodies_to_the_general_path(body):
    assert _dense_numbers(orjson.dumps(body), 1024) is None


def test_fast_path_leaves_over_max_batch_to_the_general_path():
    raw = orjson.dumps({"instances": RNG_IMAGES.tolist()})
    assert _dense_numbers(raw, 2) is None
    with pytest.raises(BadRequest, match="exceeds the limit of 2"):
        parse_request(raw, max_batch=2)


def test_fast_path_never_accepts_what_the_general_path_would_not():
    """Random edits of valid bodies (digits, brackets, commas, spaces, signs, dots): the fast path answers
    None or exactly the general path's result, so every malformed body still gets its precise 400."""
    rng = np.random.default_rng(1)
    alphabet = b"0123456789[], \n.-e0"
    one = RNG_IMAGES[:1]
    seeds = [orjson.dumps({"instances": one.tolist()}), json.dumps({"inputs": one[..., None].tolist()}).encode(),
             orjson.dumps({"instances": one.tolist(), "signature_name": "serving_uint8"})]
    accepted = 0
    for trial in range(3000):
        raw = bytearray(seeds[trial % len(seeds)])
        start = raw.index(b"[")
        for _ in range(rng.integers(1, 4)):
            pos = int(rng.integers(start, len(raw)))
            op = rng.integers(3)
            char = alphabet[rng.integers(len(alphabet))]
            if op == 0:
                raw[pos] = char
            elif op == 1:
                raw.insert(pos, char)
            else:
                del raw[pos]
        fast, general = _both_paths(bytes(raw))
        if fast is not None:
            accepted += 1
            _assert_same(fast, general)
    assert accepted > 100  # digit edits inside numbers keep many bodies valid: the comparison ran

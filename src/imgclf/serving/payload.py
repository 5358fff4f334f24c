"""TF Serving REST request/response bodies for the image model, checked strictly (numpy only, no TF).

Request (POST /v1/models/NAME[/versions/N]:predict), as TF Serving accepts it:
    {"instances": [img, ...]}                row form; img is 28x28 or 28x28x1 numbers,
    {"instances": [{"images": img}, ...]}     or an object naming the input
    {"inputs": [img, ...]} / {"inputs": {"images": [img, ...]}}   columnar form
    img may also be TF Serving's binary form {"b64": "<base64>"}: here the 784 raw uint8 pixel
    bytes of one image, row-major (no JSON number parsing: the fast path for batches)
    optional "signature_name": "serving_default" (float32) or "serving_uint8" (0..255 integers)
Every pixel is a raw intensity: a finite number in 0..255 for both signatures.
Response: row form -> {"predictions": [{"probabilities": [...10], "class_id": k}, ...]},
columnar form -> {"outputs": {"probabilities": [[...]], "class_id": [...]}}.
Every defect raises BadRequest with a message naming the field and the value seen.

Fast path for JSON numbers (_dense_numbers): the usual body, {"instances" or "inputs": a plain
[N,28,28] or [N,28,28,1] array of integers 0..255} with an optional known "signature_name", is
checked and read on its text with bytes.translate and numpy, never as Python lists: the
brackets and commas must be exactly the expected shape's, each pixel's place must hold one run
of digits (no leading zero, at most 3), and the digits become the values in vectorised numpy.
Any other body (floats, negatives, objects, b64, extra fields) and any body the fast path is
unsure of takes the general path, which alone writes error messages; so both paths accept the
same bodies with the same result (tests/serving/test_payload.py checks it on valid and mutated bodies).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import numpy as np
import orjson

from imgclf import settings

H, W = settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH
SIGNATURES = (settings.SERVING_SIGNATURE_FLOAT, settings.SERVING_SIGNATURE_UINT8)
INPUT = settings.SERVING_INPUT_NAME
DEFAULT_MAX_BATCH = 1024
PIXEL_MAX = 255  # both signatures take raw pixel intensities 0..255


class BadRequest(ValueError):
    """The request body breaks the contract; the server answers 400 with {"error": message}."""


@dataclass(frozen=True)
class Parsed:
    images: np.ndarray  # float32 or uint8, [N, 28, 28]
    columnar: bool
    signature: str


def _load(body) -> dict:
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object with 'instances' or 'inputs', got {type(body).__name__}")
    return body


def _named(value, where: str):
    """An object form {"images": ...} -> its value; a binary {"b64": ...} and anything else unchanged."""
    if isinstance(value, dict) and set(value) != {"b64"}:
        if set(value) != {INPUT}:
            raise BadRequest(f"{where}: expected the single input '{INPUT}', got keys {sorted(value)}")
        return value[INPUT]
    return value


def _b64_images(value: list, where: str) -> np.ndarray:
    """[{"b64": s}, ...] -> uint8 [N, H, W]; each s must decode to exactly H*W bytes."""
    raws = []
    for i, item in enumerate(value):
        if not (isinstance(item, dict) and set(item) == {"b64"}):
            raise BadRequest(f"{where}[{i}]: expected {{\"b64\": ...}} like the other images, got "
                             f"{type(item).__name__ if not isinstance(item, dict) else sorted(item)}")
        if not isinstance(item["b64"], str):
            raise BadRequest(f"{where}[{i}].b64: expected a base64 string, got {type(item['b64']).__name__}")
        try:
            raw = base64.b64decode(item["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"{where}[{i}].b64: not valid base64 ({exc})") from None
        if len(raw) != H * W:
            raise BadRequest(f"{where}[{i}].b64: decodes to {len(raw)} bytes; expected {H * W} "
                             f"(one {H}x{W} uint8 image, row-major)")
        raws.append(raw)
    return np.frombuffer(b"".join(raws), np.uint8).reshape(len(raws), H, W)


def _is_b64(value) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and set(value[0]) == {"b64"}


def _as_array(value, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nesting, mixed types
        raise BadRequest(f"{where}: not a rectangular array of numbers ({str(exc).splitlines()[0]})") from None
    if arr.dtype.kind not in "iuf":
        seen = {"U": "strings", "S": "strings", "b": "booleans", "O": "mixed or null values"}.get(arr.dtype.kind, str(arr.dtype))
        raise BadRequest(f"{where}: pixel values must be numbers, got {seen}")
    return arr


def _check_pixels(arr: np.ndarray, where: str) -> None:
    """Pixels are raw intensities: finite and within 0..255 (1e300 would become inf in float32 -> null outputs)."""
    if arr.min() >= 0 and arr.max() <= PIXEL_MAX:  # fast path; NaN fails both comparisons
        return
    bad = (arr < 0) | (arr > PIXEL_MAX)
    if arr.dtype.kind == "f":
        bad |= ~np.isfinite(arr)
    index = [int(i) for i in np.argwhere(bad)[0]]
    value = arr[tuple(index)].item()
    problem = "is not a finite number" if not np.isfinite(value) else "is out of range"
    raise BadRequest(f"'{where}'{index}: pixel value {value!r} {problem}; pixels must be numbers in 0..{PIXEL_MAX} "
                     f"({int(bad.sum())} bad value(s) in all)")


_WS = rb"[ \t\n\r]*"  # JSON whitespace (\s would also match \f and \v)
_SIG = rb'"signature_name"' + _WS + b":" + _WS + rb'"(' + b"|".join(re.escape(s.encode()) for s in SIGNATURES) + rb')"'
_HEAD = re.compile(_WS + rb"\{" + _WS + rb"(?:" + _SIG + _WS + b"," + _WS + rb')?"(instances|inputs)"' + _WS + b":" + _WS)
_TAIL = re.compile(_WS + rb"(?:," + _WS + _SIG + _WS + rb")?\}" + _WS)
_DIGITS, _SPACES = b"0123456789", b" \t\n\r"
# Kinds of the array text's characters: digit "d", space " ", bracket or comma kept, anything else "x"
# (a float, a negative number, a string: the general path's business).
_KINDS = bytes(b"d"[0] if c in _DIGITS else b" "[0] if c in _SPACES else c if c in b"[]," else b"x"[0]
               for c in range(256))


def _skeleton(per_pixel: bytes) -> bytes:
    """One image's brackets and commas with the numbers taken out: 28 rows of 28 pixels."""
    row = b"[" + b",".join([per_pixel] * W) + b"]"
    return b"[" + b",".join([row] * H) + b"]"


_IMAGE_SKELETONS = (_skeleton(b""), _skeleton(b"[]"))  # [N,28,28] and [N,28,28,1]


def _dense_numbers(body: bytes, max_batch: int) -> Parsed | None:
    """The fast path (module docstring): the parsed batch, or None to leave the body to the general path."""
    head = _HEAD.match(body)
    end = body.rfind(b"]") + 1
    tail = _TAIL.fullmatch(body, end) if head and end > head.end() else None
    if tail is None or (head[1] and tail[1]) or body[head.end():head.end() + 1] != b"[":
        return None
    raw = body[head.end():end]
    kinds = raw.translate(_KINDS)
    if b"x" in kinds:
        return None
    skeleton = raw.translate(None, _DIGITS + _SPACES)
    for image in _IMAGE_SKELETONS:
        n, extra = divmod(len(skeleton) - 1, len(image) + 1)
        if not extra and 1 <= n <= max_batch and skeleton == b"[" + b",".join([image] * n) + b"]":
            break
    else:
        return None
    if b" " in kinds:  # JSON allows spaces between tokens, not inside a number: "1 2" is two runs here
        kind = np.frombuffer(kinds, np.uint8)
        number = kind == ord("d")
        if np.count_nonzero(number[1:] & ~number[:-1]) != n * H * W:
            return None
        raw, kinds = raw.translate(None, _SPACES), kinds.translate(None, b" ")
    text, kind = np.frombuffer(raw, np.uint8), np.frombuffer(kinds, np.uint8)
    number = kind == ord("d")
    # With the skeleton exact, a number right after "]" or right before "[" is the only way to put
    # one outside a pixel's place; then every place holds one run of digits, or is empty.
    if (number[1:] & (text[:-1] == ord("]"))).any() or (number[:-1] & (text[1:] == ord("["))).any():
        return None
    starts = np.flatnonzero(number[1:] & ~number[:-1]) + 1
    if len(starts) != n * H * W:  # an empty place
        return None
    images = _small_integers(text, starts, np.flatnonzero(number[:-1] & ~number[1:]))
    if images is None:
        return None
    signature = (head[1] or tail[1] or settings.SERVING_SIGNATURE_FLOAT.encode()).decode()
    images = images.astype(np.uint8 if signature == settings.SERVING_SIGNATURE_UINT8 else np.float32)
    return Parsed(images.reshape(n, H, W), head[2] == b"inputs", signature)


def _small_integers(text: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Integers 0..255 written in plain digits (no leading zero) from their digit runs; None for anything else."""
    length = ends - starts + 1
    if length.max() > 3:
        return None
    first = text[starts].astype(np.int16) - ord("0")
    second = text[np.minimum(starts + 1, ends)].astype(np.int16) - ord("0")
    third = text[np.minimum(starts + 2, ends)].astype(np.int16) - ord("0")
    if ((first == 0) & (length > 1)).any():  # "012" is not JSON
        return None
    values = np.where(length == 1, first, np.where(length == 2, first * 10 + second, first * 100 + second * 10 + third))
    return values if values.max() <= PIXEL_MAX else None


def parse_request(body, max_batch: int = DEFAULT_MAX_BATCH) -> Parsed:
    """Check a predict body (bytes or decoded JSON) and return the image batch for the chosen signature."""
    if isinstance(body, bytes):
        parsed = _dense_numbers(body, max_batch)
        if parsed is not None:
            return parsed
    return _parse_general(body, max_batch)


def _parse_general(body, max_batch: int) -> Parsed:
    body = _load(body)
    keys = {"instances", "inputs"} & set(body)
    if len(keys) != 1:
        raise BadRequest("request must have exactly one of 'instances' (row form) or 'inputs' (columnar form)")
    unknown = set(body) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise BadRequest(f"unknown request fields {sorted(unknown)}")
    signature = body.get("signature_name") or settings.SERVING_SIGNATURE_FLOAT
    if signature not in SIGNATURES:
        raise BadRequest(f"signature_name {signature!r} not found; available: {', '.join(SIGNATURES)}")
    (key,) = keys
    value = body[key]
    if key == "instances":
        if not isinstance(value, list):
            raise BadRequest(f"'instances' must be a list, got {type(value).__name__}")
        objects = [isinstance(v, dict) for v in value]
        if any(objects):
            if not all(objects):
                first = objects.index(not objects[0])
                raise BadRequest(f"instances mix objects and arrays: instances[0] is "
                                 f"{'an object' if objects[0] else 'an array'}, instances[{first}] is not; "
                                 "use one form for every instance")
            value = [_named(v, f"instances[{i}]") for i, v in enumerate(value)]
    else:
        value = _named(value, "inputs")
    if _is_b64(value):  # binary form: uint8 pixels, nothing to parse or range-check
        if len(value) > max_batch:
            raise BadRequest(f"batch of {len(value)} images exceeds the limit of {max_batch}")
        images = _b64_images(value, key)
        if signature != settings.SERVING_SIGNATURE_UINT8:
            images = images.astype(np.float32)
        return Parsed(images, key == "inputs", signature)
    arr = _as_array(value, key)
    if arr.ndim >= 1 and arr.shape[0] == 0:
        raise BadRequest(f"'{key}' is empty: send at least one image")
    if not ((arr.ndim == 3 and arr.shape[1:] == (H, W)) or (arr.ndim == 4 and arr.shape[1:] == (H, W, 1))):
        raise BadRequest(f"'{key}' has shape {list(arr.shape)}; expected [N,{H},{W}] or [N,{H},{W},1]")
    if arr.shape[0] > max_batch:
        raise BadRequest(f"batch of {arr.shape[0]} images exceeds the limit of {max_batch}")
    _check_pixels(arr, key)
    if signature == settings.SERVING_SIGNATURE_UINT8:
        if arr.dtype.kind == "f":
            raise BadRequest(f"signature {signature} takes integers 0..255, got floating-point numbers in '{key}'")
        images = arr.astype(np.uint8).reshape(-1, H, W)
    else:
        images = arr.astype(np.float32, copy=False).reshape(-1, H, W)
    return Parsed(images, key == "inputs", signature)


def format_response(probabilities: np.ndarray, class_id: np.ndarray, columnar: bool) -> dict:
    """TF Serving's response shape; numpy arrays are left for orjson (OPT_SERIALIZE_NUMPY) to write."""
    p_name, c_name = settings.SERVING_OUTPUT_PROBABILITIES, settings.SERVING_OUTPUT_CLASS
    if columnar:
        return {"outputs": {p_name: probabilities, c_name: class_id}}
    return {"predictions": [{p_name: p, c_name: int(c)} for p, c in zip(probabilities, class_id)]}

"""Reader for the MNIST IDX format (gzipped or raw), with strict checks.

IDX layout: 2 zero bytes, a type code, the number of dimensions, then one
big-endian uint32 per dimension, then the data. Images are magic 0x00000803
(N x rows x cols), labels 0x00000801 (N). Type codes read: 0x08 (unsigned byte,
the MNIST files) and 0x0D / 0x0E (big-endian float32 / float64). Float values
must be finite and in 0..255 (labels: whole numbers) and are rounded to uint8;
anything else is a one-line error naming the file and the field.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np

from imgclf.data import storage
from imgclf.errors import UserError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"
_TYPES = {0x08: np.dtype(np.uint8), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(data: bytes, name: str, expected_magic: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array; UserError naming `name` on any defect."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{name}: corrupt gzip stream ({exc})") from None
    if len(data) < 4:
        raise UserError(f"{name}: truncated IDX file ({len(data)} bytes, no header)")
    (magic,) = struct.unpack(">I", data[:4])
    type_code = (magic >> 8) & 0xFF
    if magic >> 16 or type_code not in _TYPES or (magic & 0xFF) != (expected_magic & 0xFF):
        raise UserError(f"{name}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
                        f" (or the float32/float64 type codes 0x0D/0x0E)")
    ndim = magic & 0xFF
    dtype = _TYPES[type_code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        raise UserError(
            f"{name}: IDX dimensions {'x'.join(map(str, dims))} need {expected} data bytes, file has {actual}"
            + (" (truncated)" if actual < expected else " (trailing bytes)")
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return values if dtype == np.uint8 else _float_to_uint8(values, name, expected_magic == LABELS_MAGIC)


def _float_to_uint8(values: np.ndarray, name: str, labels: bool) -> np.ndarray:
    """Float IDX data as uint8: every value finite, in 0..255 (and whole, for labels); else one line naming the file."""
    field = "labels" if labels else "pixel values"
    flat = values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(-1, 1)
    bad = ~np.isfinite(flat)
    if bad.any():
        item = int(np.flatnonzero(bad.any(axis=1))[0])
        raise UserError(f"{name}: field '{field}' holds {int(bad.sum())} NaN or infinite float value(s), first in "
                        f"item {item}")
    outside = (flat < 0) | (flat > 255) | ((flat != np.round(flat)) if labels else False)
    if outside.any():
        item = int(np.flatnonzero(outside.any(axis=1))[0])
        rule = "whole numbers in 0..255" if labels else "values in 0..255"
        raise UserError(f"{name}: field '{field}' must hold {rule}; item {item} has {flat[item][outside[item]][0]!r}")
    return np.round(values).astype(np.uint8)


def find_idx_file(directory_uri: str, stem: str) -> str:
    """Return the URI of `<stem>` or `<stem>.gz` under a directory; UserError when neither exists."""
    children = storage.list_children(directory_uri)
    for candidate in (stem + ".gz", stem):
        if candidate in children:
            return storage.parse_uri(directory_uri).child(candidate).uri()
    if not storage.exists(directory_uri):
        raise UserError(f"{directory_uri}: no such directory")
    raise UserError(f"{directory_uri}: missing {stem}[.gz]")


def load_idx_pair(directory_uri: str, prefix: str, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Load `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte` and cross-check them."""
    images_uri = find_idx_file(directory_uri, f"{prefix}-images-idx3-ubyte")
    labels_uri = find_idx_file(directory_uri, f"{prefix}-labels-idx1-ubyte")
    images = parse_idx(storage.read_bytes(images_uri), images_uri, IMAGES_MAGIC)
    labels = parse_idx(storage.read_bytes(labels_uri), labels_uri, LABELS_MAGIC)
    if tuple(images.shape[1:]) != tuple(image_shape):
        raise UserError(f"{images_uri}: images are {images.shape[1]}x{images.shape[2]}, expected "
                        f"{image_shape[0]}x{image_shape[1]}")
    if len(images) != len(labels):
        raise UserError(f"{labels_uri}: {len(labels)} labels but {images_uri} has {len(images)} images")
    return images, labels

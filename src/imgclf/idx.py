"""Reader for the MNIST IDX format (gzipped or raw), with strict checks.

IDX layout: 2 zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian uint32 per dimension, then the data. Images
are magic 0x00000803 (N x rows x cols), labels 0x00000801 (N).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np

from imgclf import storage
from imgclf.errors import UserError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"


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
    if magic != expected_magic:
        raise UserError(f"{name}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims)
    actual = len(data) - header
    if actual != expected:
        raise UserError(
            f"{name}: IDX dimensions {'x'.join(map(str, dims))} need {expected} data bytes, file has {actual}"
            + (" (truncated)" if actual < expected else " (trailing bytes)")
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


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

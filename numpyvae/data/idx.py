"""Read and write IDX files, the format MNIST and Fashion-MNIST are published in.

Layout (all integers big-endian):

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4·d bytes   the size of each dimension, as unsigned 32-bit integers
    the rest    prod(sizes) elements in C order, big-endian

So MNIST images start 00 00 08 03 | 60000 | 28 | 28 and labels 00 00 08 01 | 60000.
Files may be gzip-compressed (detected from the content, not the name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian NumPy dtype
TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A file is not a valid IDX file (or not the kind that was expected)."""


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if it is gzip."""
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXError(f"{path}: truncated gzip data (a download or copy stopped early)") \
            from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise IDXError(f"{path}: corrupt gzip data ({err})") from None


def parse_idx(data: bytes, name: str = "<bytes>", ndim: int | None = None) -> np.ndarray:
    """Decode uncompressed IDX ``data``; ``name`` is used in error messages.

    With ``ndim`` given, a file with another number of dimensions is refused
    (e.g. a label file passed where images are expected). The result is a
    read-only view on ``data`` for uint8 files (no copy), else a native-order copy.
    """
    if len(data) < 4:
        raise IDXError(f"{name}: only {len(data)} bytes, too short for an IDX header")
    zero, type_code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in TYPE_CODES:
        raise IDXError(
            f"{name}: not an IDX file (magic number 0x{data[:4].hex()}; expected 0x0000TTDD "
            f"with type TT one of {', '.join(f'{c:02x}' for c in TYPE_CODES)})"
        )
    if dims == 0:
        raise IDXError(f"{name}: IDX header declares 0 dimensions")
    if ndim is not None and dims != ndim:
        raise IDXError(f"{name}: IDX file has {dims} dimension(s), expected {ndim}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise IDXError(f"{name}: truncated header ({len(data)} bytes, needs {header})")
    shape = struct.unpack(f">{dims}I", data[4:header])
    dtype = TYPE_CODES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        raise IDXError(
            f"{name}: truncated: header {shape} promises {expected} bytes of data, "
            f"file holds {payload}"
        )
    if payload > expected:
        raise IDXError(
            f"{name}: wrong length: header {shape} promises {expected} bytes of data, "
            f"file holds {payload} ({payload - expected} extra)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip) into an array of its stored shape and type.

    Raises IDXError naming the file and what is wrong: bad magic number, wrong
    number of dimensions (when ``ndim`` is given), truncated or over-long data,
    corrupt gzip. uint8 data comes back as a read-only array.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), name=str(path), ndim=ndim)


def encode_idx(array: np.ndarray) -> bytes:
    """The uncompressed IDX bytes of ``array``."""
    array = np.asarray(array)
    big_endian = array.dtype.newbyteorder(">")
    codes = {dtype: code for code, dtype in TYPE_CODES.items()}
    if big_endian not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{', '.join(str(d.newbyteorder('=')) for d in TYPE_CODES.values())}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got an array of shape {array.shape}")
    header = struct.pack(f">HBB{array.ndim}I", 0, codes[big_endian], array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=big_endian).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``."""
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        # mtime=0 so the same array always gives the same bytes (and MD5)
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)

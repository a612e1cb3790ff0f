"""The IDX reader/writer: round trips, the byte layout, and each kind of bad file."""

import gzip

import numpy as np
import pytest

from numpyvae.data.idx import IDXError, encode_idx, parse_idx, read_idx, write_idx


def test_header_bytes_follow_the_format():
    # written by hand from the format: 00 00, type 08 (uint8), 2 dims, sizes big-endian
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])
    assert encode_idx(array) == expected


def test_multibyte_values_are_big_endian():
    data = encode_idx(np.array([1, -2], dtype=np.int16))
    assert data == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x00, 0x01, 0xFF, 0xFE])


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, suffix, dtype):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(4, 5, 3)) * 50).astype(dtype)
    path = tmp_path / f"x-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == (4, 5, 3)
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_round_trip_labels_1d(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz", ndim=1), labels)


def test_gzip_detected_from_content_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain-name").write_bytes(gzip.compress(encode_idx(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), array)


def test_gz_output_is_reproducible(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.fixture
def images_bytes() -> bytes:
    return encode_idx(np.arange(2 * 28 * 28, dtype=np.uint16).astype(np.uint8).reshape(2, 28, 28))


def test_truncated_payload(tmp_path, images_bytes):
    path = tmp_path / "cut-idx3"
    path.write_bytes(images_bytes[:-100])
    with pytest.raises(IDXError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "1568 bytes" in str(info.value) and "1468" in str(info.value)


def test_truncated_gzip(tmp_path, images_bytes):
    path = tmp_path / "cut-idx3.gz"
    path.write_bytes(gzip.compress(images_bytes)[:-30])
    with pytest.raises(IDXError, match="truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip(tmp_path, images_bytes):
    data = bytearray(gzip.compress(images_bytes))
    data[-6] ^= 0xFF  # inside the stored length: the gzip check must notice
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(IDXError, match="corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_header(tmp_path, images_bytes):
    path = tmp_path / "head"
    path.write_bytes(images_bytes[:10])
    with pytest.raises(IDXError, match="truncated header"):
        read_idx(path)


def test_too_short_for_magic(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(IDXError, match="too short"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\x00\x00\x07\x03", b"\x01\x00\x08\x03", b"<htm"])
def test_wrong_magic(tmp_path, images_bytes, magic):
    # e.g. an HTML error page saved under the file's name
    path = tmp_path / "wrong-magic"
    path.write_bytes(magic + images_bytes[4:])
    with pytest.raises(IDXError, match="not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value) and magic.hex() in str(info.value)


def test_zero_dimensions(tmp_path):
    path = tmp_path / "zero-dims"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(IDXError, match="0 dimensions"):
        read_idx(path)


def test_extra_bytes_are_a_wrong_length(tmp_path, images_bytes):
    path = tmp_path / "long"
    path.write_bytes(images_bytes + b"\x00" * 7)
    with pytest.raises(IDXError, match="wrong length.*7 extra"):
        read_idx(path)


def test_wrong_kind_of_file(tmp_path):
    path = tmp_path / "labels-idx1.gz"
    write_idx(path, np.zeros(10, dtype=np.uint8))
    with pytest.raises(IDXError, match="1 dimension.*expected 3") as info:
        read_idx(path, ndim=3)
    assert str(path) in str(info.value)


def test_parse_names_the_source_in_errors():
    with pytest.raises(IDXError, match="^my-bytes: "):
        parse_idx(b"junkjunk", name="my-bytes")


@pytest.mark.parametrize("array", [np.zeros(3, dtype=np.uint16), np.zeros(3, dtype=bool),
                                   np.array(5, dtype=np.uint8)])
def test_write_rejects_what_idx_cannot_hold(tmp_path, array):
    with pytest.raises(ValueError, match="IDX"):
        write_idx(tmp_path / "x", array)

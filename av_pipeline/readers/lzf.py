"""LZF (liblzf) compression, as used by PCD ``DATA binary_compressed``.

The stream is a sequence of tokens; each starts with a control byte ``ctrl``:

- ``ctrl < 32``: a literal run of ``ctrl + 1`` bytes follows.
- otherwise a back reference: ``length = (ctrl >> 5) + 2`` (if ``ctrl >> 5 == 7`` one more
  byte is added to the length), then one byte with the low 8 bits of the offset; the
  reference starts ``((ctrl & 0x1f) << 8 | low) + 1`` bytes before the output position and
  may overlap the bytes it produces.

The kernels are numba-compiled loops (the format is sequential, numpy cannot vectorise it);
the Python wrappers validate input and turn kernel error codes into :class:`LogFormatError`.
No third-party LZF package is needed.

>>> payload = bytes(range(40)) * 50
>>> packed = lzf_compress(payload)
>>> len(packed) < len(payload), lzf_decompress(packed, len(payload)) == payload
(True, True)
"""

from __future__ import annotations

import numba
import numpy as np

from av_pipeline.errors import LogFormatError

_MAX_LITERAL = 32  # a literal run holds 1..32 bytes
_MAX_OFFSET = 8192  # 13-bit back-reference distance (minus one)
_MAX_MATCH = 264  # 2 + 7 + 255
_HASH_BITS = 14

# Kernel error codes (negative return values).
_ERR_INPUT_OVERRUN = -1
_ERR_OUTPUT_OVERRUN = -2
_ERR_BAD_REFERENCE = -3


@numba.njit(cache=True, nogil=True)
def _decompress_kernel(src: np.ndarray, dst: np.ndarray) -> int:
    ip = 0
    op = 0
    n_in = src.shape[0]
    n_out = dst.shape[0]
    while ip < n_in:
        ctrl = np.int64(src[ip])
        ip += 1
        if ctrl < 32:
            run = ctrl + 1
            if ip + run > n_in:
                return _ERR_INPUT_OVERRUN
            if op + run > n_out:
                return _ERR_OUTPUT_OVERRUN
            for k in range(run):
                dst[op + k] = src[ip + k]
            ip += run
            op += run
        else:
            length = ctrl >> 5
            ref = op - ((ctrl & 0x1F) << 8) - 1
            if length == 7:
                if ip >= n_in:
                    return _ERR_INPUT_OVERRUN
                length += np.int64(src[ip])
                ip += 1
            if ip >= n_in:
                return _ERR_INPUT_OVERRUN
            ref -= np.int64(src[ip])
            ip += 1
            length += 2
            if ref < 0:
                return _ERR_BAD_REFERENCE
            if op + length > n_out:
                return _ERR_OUTPUT_OVERRUN
            for k in range(length):  # byte by byte: the reference may overlap the output
                dst[op + k] = dst[ref + k]
            op += length
    return op


@numba.njit(cache=True, nogil=True)
def _compress_kernel(src: np.ndarray, dst: np.ndarray) -> int:
    n = src.shape[0]
    table = np.full(1 << _HASH_BITS, -1, dtype=np.int64)
    ip = 0
    op = 0
    lit_start = 0  # first byte of the pending literal run
    while ip + 2 < n:
        h = ((np.int64(src[ip]) << 16) | (np.int64(src[ip + 1]) << 8) | np.int64(src[ip + 2])) * 2654435761
        h = (h >> 8) & ((1 << _HASH_BITS) - 1)
        ref = table[h]
        table[h] = ip
        off = ip - ref - 1
        if ref >= 0 and off < _MAX_OFFSET and src[ref] == src[ip] and src[ref + 1] == src[ip + 1] and src[ref + 2] == src[ip + 2]:
            length = 3
            max_len = min(_MAX_MATCH, n - ip)
            while length < max_len and src[ref + length] == src[ip + length]:
                length += 1
            # flush the pending literals in runs of at most 32 bytes
            while lit_start < ip:
                run = min(_MAX_LITERAL, ip - lit_start)
                dst[op] = run - 1
                op += 1
                for k in range(run):
                    dst[op + k] = src[lit_start + k]
                op += run
                lit_start += run
            code = length - 2
            if code < 7:
                dst[op] = (code << 5) | (off >> 8)
                op += 1
            else:
                dst[op] = (7 << 5) | (off >> 8)
                dst[op + 1] = code - 7
                op += 2
            dst[op] = off & 0xFF
            op += 1
            ip += length
            lit_start = ip
        else:
            ip += 1
    ip = n
    while lit_start < ip:
        run = min(_MAX_LITERAL, ip - lit_start)
        dst[op] = run - 1
        op += 1
        for k in range(run):
            dst[op + k] = src[lit_start + k]
        op += run
        lit_start += run
    return op


def lzf_decompress(data: bytes | np.ndarray, expected_size: int, *, source: str = "lzf stream") -> bytes:
    """Decompress an LZF stream that must expand to exactly ``expected_size`` bytes.

    Args:
        data: the compressed bytes.
        expected_size: the uncompressed size recorded next to the stream.
        source: names the file/field in error messages.

    Raises:
        LogFormatError: the stream is corrupt, truncated, or expands to another size.
    """
    src = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    dst = np.empty(int(expected_size), dtype=np.uint8)
    written = _decompress_kernel(src, dst)
    if written == _ERR_INPUT_OVERRUN:
        raise LogFormatError(source, "lzf", f"compressed stream of {len(src)} bytes ends inside a token (truncated)")
    if written == _ERR_OUTPUT_OVERRUN:
        raise LogFormatError(source, "lzf", f"stream expands past the declared {expected_size} bytes")
    if written == _ERR_BAD_REFERENCE:
        raise LogFormatError(source, "lzf", "back reference before the start of the output (corrupt stream)")
    if written != expected_size:
        raise LogFormatError(source, "lzf", f"expected {expected_size} uncompressed bytes, the stream holds {written}")
    return dst.tobytes()


def lzf_compress(data: bytes | np.ndarray) -> bytes:
    """Compress bytes to an LZF stream (readable by liblzf / PCL ``lzf_decompress``)."""
    src = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else np.ascontiguousarray(data).view(np.uint8).ravel()
    # worst case: one control byte per 32 literal bytes
    dst = np.empty(len(src) + len(src) // _MAX_LITERAL + 16, dtype=np.uint8)
    written = _compress_kernel(src, dst)
    return dst[:written].tobytes()


__all__ = ["lzf_compress", "lzf_decompress"]

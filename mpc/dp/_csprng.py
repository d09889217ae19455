"""Bulk uniform random integers and Bernoulli trials from the operating system's CSPRNG.

Every random bit used by the vectorised samplers comes from :func:`os.urandom`
(``getrandom(2)`` on Linux), directly for small requests or, for large ones, as the AES-256-CTR
keystream under a fresh key drawn from it (:func:`random_bytes`); we assume both are
cryptographically secure generators. Nothing here is seeded or reproducible, by design.
``numpy`` only *views* the bytes; ``numpy.random`` is never used.

Exactness:

* :func:`uniform_below` draws ``W`` uniform on ``[0, 2**bits)`` (just enough whole random bytes,
  masked to the bit length of ``bound - 1``) and keeps it only if ``W < bound``; a kept value is
  uniform on ``[0, bound)``. No modulo, hence no modulo bias (and no slow uint64 division).
* :func:`bernoulli_below` returns ``[W < n]`` for the same ``W``, i.e. Bernoulli(n/bound), but
  generates ``W`` lazily: its top 8 bits first, its remaining bits only when the top byte does not
  already settle both ``W < bound`` and ``W < n``. The two parts are independent and uniform, so
  ``W`` has exactly the distribution above; only the number of bytes consumed changes (about
  1.05 bytes per trial instead of up to 8), which matters because the CSPRNG is the bottleneck.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

MAX_BOUND = 1 << 63
"""Largest bound accepted; every value drawn fits in int64."""

_TOP_BITS = 8


#: Below this, bytes come straight from os.urandom; above it, from an AES-256-CTR keystream
#: under a fresh 32-byte key from os.urandom used for that one request only (a standard
#: CSPRNG construction, "fast key erasure"). getrandom(2) was the samplers' bottleneck: about a
#: quarter of the time to draw 10^6 discrete Gaussians; AES-NI produces GB/s.
_STREAM_THRESHOLD = 4096


def random_bytes(count: int) -> bytes:
    """``count`` cryptographically secure random bytes."""
    if count < _STREAM_THRESHOLD:
        return os.urandom(count)
    encryptor = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(bytes(16))).encryptor()
    return encryptor.update(bytes(count))


def random_ints(count: int, bits: int) -> NDArray[np.int64]:
    """``count`` independent uniform integers in ``[0, 2**bits)``, ``0 <= bits <= 63``."""
    if bits == 0:
        return np.zeros(count, dtype=np.int64)
    nbytes = (bits + 7) // 8
    raw = random_bytes(count * nbytes)
    mask = (1 << bits) - 1
    if nbytes in (1, 2, 4):
        ints = np.frombuffer(raw, dtype=np.dtype(f"<u{nbytes}")).astype(np.int64)
    elif nbytes == 8:
        # Mask in uint64 first so the value is < 2**63 before it becomes int64.
        ints = (np.frombuffer(raw, dtype=np.dtype("<u8")) & np.uint64(mask)).astype(np.int64)
        return ints
    else:
        # 3, 5, 6 or 7 bytes: pad each little-endian group with zero bytes up to 8, then view.
        padded = np.zeros((count, 8), dtype=np.uint8)
        padded[:, :nbytes] = np.frombuffer(raw, dtype=np.uint8).reshape(count, nbytes)
        ints = padded.view(np.dtype("<i8")).reshape(count).astype(np.int64)
    if bits % 8:
        ints &= mask
    return ints


def _check_bound(bound: int) -> int:
    if not 1 <= bound <= MAX_BOUND:
        raise ValueError(f"bound must be in [1, 2**63], got {bound}")
    return (bound - 1).bit_length()


def uniform_below(bound: int, count: int) -> NDArray[np.int64]:
    """``count`` independent uniform integers in ``[0, bound)``, for ``1 <= bound <= 2**63``."""
    bits = _check_bound(bound)
    out = np.empty(count, dtype=np.int64)
    filled = 0
    while filled < count:
        need = count - filled
        # Acceptance is bound / 2**bits > 1/2: draw for the expectation plus slack, loop if
        # short. Surplus accepted values are discarded (they are independent of the rest).
        draw = need * (1 << bits) // bound + need // 32 + 16
        words = random_ints(draw, bits)
        kept = words[words < bound][:need]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out


def bernoulli_below(numerators: NDArray[np.int64], bound: int) -> NDArray[np.bool_]:
    """Lane i: ``[W_i < numerators[i]]`` with ``W_i`` uniform on ``[0, bound)``.

    That is Bernoulli(numerators[i] / bound), exactly; needs ``0 <= numerators <= bound``.
    """
    bits = _check_bound(bound)
    if bits <= _TOP_BITS:
        small: NDArray[np.bool_] = uniform_below(bound, numerators.size) < numerators
        return small
    shift = bits - _TOP_BITS
    top_limit = (bound - 1) >> shift  # top byte of the largest valid W
    result = np.empty(numerators.size, dtype=np.bool_)
    lanes: NDArray[np.intp] | None = None  # None: all lanes (first round, no gather needed)
    nums = numerators
    num_top = nums >> shift
    while True:
        top = np.frombuffer(random_bytes(nums.size), dtype=np.uint8)
        # top < top_limit: W < bound whatever the low bits, and W < n is settled unless
        # top == top of n. top > top_limit: W >= bound, a rejected draw to redo.
        res = top < num_top
        redo = top > top_limit
        undecided = (top == top_limit) | ((top == num_top) & (top < top_limit))
        if undecided.any():
            idx = np.flatnonzero(undecided)
            w = (top[idx].astype(np.int64) << shift) | random_ints(idx.size, shift)
            valid = w < bound
            res[idx] = w < nums[idx]
            redo[idx[~valid]] = True
        if lanes is None:
            result[:] = res
        else:
            result[lanes] = res
        if not redo.any():
            return result
        # Redo lanes got a provisional value above; it is overwritten by a later round.
        sel = np.flatnonzero(redo)
        lanes = sel if lanes is None else lanes[sel]
        nums, num_top = nums[sel], num_top[sel]


def random_bits(count: int) -> NDArray[np.bool_]:
    """``count`` independent fair coin flips (one random bit each)."""
    raw = np.frombuffer(random_bytes((count + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw)[:count].astype(np.bool_)

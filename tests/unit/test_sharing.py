from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mpc.errors import ProtocolError
from mpc.ring import ring_sum
from mpc.sharing import (
    EphemeralKey,
    PairwiseMask,
    key_offer_payload,
    masked_chunks,
    round_input_digest,
    round_seed,
)


def _masks(ids: list[str], round_id: int, words: int) -> dict[str, np.ndarray]:
    keys = {pid: EphemeralKey.generate() for pid in ids}
    digest = b"\x01" * 32
    masks = {}
    for me in ids:
        seeds = {
            peer: round_seed(keys[me].exchange(keys[peer].public_bytes), digest, round_id, me, peer)
            for peer in ids
            if peer != me
        }
        masks[me] = PairwiseMask(me, ids, seeds).next(words)
    return masks


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_masks_of_all_parties_cancel_exactly(n: int) -> None:
    ids = [f"p{i}" for i in range(n)]
    masks = _masks(ids, 0, 10_000)
    assert not np.any(ring_sum(list(masks.values())))
    assert all(np.any(m) for m in masks.values())


def test_any_strict_subset_of_masks_does_not_cancel() -> None:
    ids = ["a", "b", "c", "d"]
    masks = _masks(ids, 3, 1000)
    for left_out in ids:
        partial = ring_sum([masks[p] for p in ids if p != left_out])
        assert np.count_nonzero(partial) > 990


def test_masked_share_bytes_are_uniform() -> None:
    """Chi-square test of a single party's masked share: it carries no information.

    The input is maximally structured (all zeros except a constant), so any leak of x_i into
    y_i would show as a skewed byte histogram. False-alarm probability 1e-6.
    """
    ids = ["a", "b", "c"]
    keys = {pid: EphemeralKey.generate() for pid in ids}
    seeds = {
        peer: round_seed(keys["b"].exchange(keys[peer].public_bytes), b"d" * 32, 0, "b", peer)
        for peer in ("a", "c")
    }
    statistic = np.full(200_000, 42, dtype=np.uint64)
    share = np.concatenate(
        [chunk for _, chunk in masked_chunks(statistic, PairwiseMask("b", ids, seeds), 65_536)]
    )
    counts = np.bincount(share.view(np.uint8), minlength=256)
    _, p_value = stats.chisquare(counts)
    assert p_value > 1e-6
    # Every byte position of the 64-bit words is uniform too (high bytes of a small x_i would
    # otherwise be all zero).
    by_position = share.view(np.uint8).reshape(-1, 8)
    for position in range(8):
        _, p = stats.chisquare(np.bincount(by_position[:, position], minlength=256))
        assert p > 1e-7


def test_round_seeds_are_symmetric_and_fresh() -> None:
    a, b = EphemeralKey.generate(), EphemeralKey.generate()
    secret = a.exchange(b.public_bytes)
    assert secret == b.exchange(a.public_bytes)
    digest = b"x" * 32
    seed = round_seed(secret, digest, 0, "a", "b")
    assert seed == round_seed(secret, digest, 0, "b", "a")
    assert seed != round_seed(secret, digest, 1, "a", "b")  # fresh per round
    assert seed != round_seed(secret, b"y" * 32, 0, "a", "b")  # bound to the job spec
    assert seed != round_seed(secret, digest, 0, "a", "c")  # bound to the pair
    # Bound to the round's public input: a model shown differently to two parties gives
    # masks that do not cancel.
    w0, w1 = round_input_digest(b"\x00" * 8), round_input_digest(b"\x01" + b"\x00" * 7)
    assert w0 != w1 and round_input_digest(b"") != w0
    assert round_seed(secret, digest, 0, "a", "b", w0) != round_seed(
        secret, digest, 0, "a", "b", w1
    )
    assert round_seed(secret, digest, 0, "a", "b", w0) == round_seed(
        secret, digest, 0, "b", "a", w0
    )


def test_chunked_mask_equals_one_shot_mask() -> None:
    ids = ["a", "b"]
    seeds = {"b": b"k" * 32}
    whole = PairwiseMask("a", ids, seeds).next(1000)
    stream = PairwiseMask("a", ids, seeds)
    parts = np.concatenate([stream.next(300), stream.next(700)])
    assert np.array_equal(whole, parts)


def test_offer_payload_is_unambiguous() -> None:
    # Length prefixes: shifting bytes between fields must change the payload.
    assert key_offer_payload(b"ab", "c", b"d") != key_offer_payload(b"a", "bc", b"d")


def test_low_order_peer_point_is_refused() -> None:
    with pytest.raises(ProtocolError, match="low-order"):
        EphemeralKey.generate().exchange(bytes(32))


def test_secrets_are_redacted_in_repr() -> None:
    key = EphemeralKey.generate()
    assert "redacted" in repr(key)
    mask = PairwiseMask("a", ["a", "b"], {"b": b"s" * 32})
    assert "redacted" in repr(mask) and "s" * 8 not in repr(mask)


def test_missing_seed_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="no pairwise seed"):
        PairwiseMask("a", ["a", "b", "c"], {"b": b"k" * 32})


def _reference_masked_chunks(
    statistic: np.ndarray, party_id: str, ids: list[str], seeds: dict[str, bytes], chunk: int
) -> list[tuple[int, np.ndarray]]:
    """The straightforward construction: one AES-CTR ``update`` of zeros per stream and chunk."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    me = ids.index(party_id)
    streams = [
        (Cipher(algorithms.AES(seeds[p]), modes.CTR(bytes(16))).encryptor(), ids.index(p) > me)
        for p in ids
        if p != party_id
    ]
    out = []
    for offset in range(0, max(1, statistic.size), chunk):
        part = statistic[offset : offset + chunk].astype(np.uint64)
        for encryptor, adds in streams:
            pad = np.frombuffer(encryptor.update(bytes(8 * part.size)), dtype="<u8")
            part = part + pad if adds else part - pad
        out.append((offset, part))
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 16, 33, 1000, 65_536])
@pytest.mark.parametrize("party", ["a", "b", "c"])
def test_masked_chunks_equal_the_straightforward_construction(chunk: int, party: str) -> None:
    """Scratch-buffer keystreams and in-place masking give exactly the reference masks, also
    for chunks that end inside an AES block (8-byte words, 16-byte blocks)."""
    ids = ["a", "b", "c"]
    seeds = {p: bytes([i + 1]) * 32 for i, p in enumerate(ids) if p != party}
    statistic = np.random.default_rng(chunk).integers(0, 2**64, 5_003, dtype=np.uint64)
    before = statistic.copy()
    got = list(masked_chunks(statistic, PairwiseMask(party, ids, seeds), chunk))
    want = _reference_masked_chunks(statistic, party, ids, seeds, chunk)
    assert [o for o, _ in got] == [o for o, _ in want]
    for (_, mine), (_, theirs) in zip(got, want, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(statistic, before)  # the input is never masked in place
    # Chunks are independent arrays: keeping them all did not let later chunks overwrite them.
    assert len({id(c) for _, c in got}) == len(got)


def test_pairwise_mask_next_and_mask_in_place_agree() -> None:
    ids = ["a", "b", "c"]
    seeds = {"a": b"\x01" * 32, "c": b"\x03" * 32}
    sizes = [5, 1, 64, 3, 200, 2]
    by_next = PairwiseMask("b", ids, seeds)
    in_place = PairwiseMask("b", ids, seeds)
    for size in sizes:
        values = np.arange(size, dtype=np.uint64)
        expected = values + by_next.next(size)
        assert in_place.mask(values, out=values) is values
        np.testing.assert_array_equal(values, expected)


def test_a_party_without_peers_sends_its_values_unmasked_copy() -> None:
    values = np.arange(4, dtype=np.uint64)
    masked = PairwiseMask("a", ["a"], {}).mask(values)
    np.testing.assert_array_equal(masked, values)
    assert masked is not values

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

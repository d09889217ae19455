"""Epoch keys: masks cancel, bind the spec, each job once per epoch, rotation and expiry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mpc.errors import ProtocolError
from mpc.protocol import epochs
from mpc.protocol.epochs import EpochKeys, SignedEpochKey
from tests.helpers import identity

IDS = ("a", "b", "c")


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def parties(cert_dir: Path, clock: Clock) -> dict[str, EpochKeys]:
    return {pid: EpochKeys(identity(cert_dir, pid), clock=clock) for pid in IDS}


def _keys(parties: dict[str, EpochKeys]) -> list[SignedEpochKey]:
    return [parties[pid].current() for pid in IDS]


def _masks(
    parties: dict[str, EpochKeys], digests: dict[str, bytes], keys: list[SignedEpochKey]
) -> np.ndarray:
    total = np.zeros(1000, np.uint64)
    for pid, epoch_keys in parties.items():
        job = epoch_keys.prepare(IDS, digests[pid], keys)
        total += job.round_mask(0).next(1000)
    return total


def test_masks_cancel_only_when_every_party_saw_the_same_spec(
    parties: dict[str, EpochKeys],
) -> None:
    keys = _keys(parties)
    same = dict.fromkeys(IDS, b"\x01" * 32)
    assert not _masks(parties, same, keys).any()
    forked = {**same, "c": b"\x02" * 32}
    assert np.count_nonzero(_masks(parties, forked, keys)) > 990


def test_each_job_is_claimed_once_per_epoch(
    parties: dict[str, EpochKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = parties["a"].prepare(IDS, b"d" * 32, _keys(parties))
    job.epoch.claim("j1")
    with pytest.raises(ProtocolError, match="already answered"):
        job.epoch.claim("j1")
    monkeypatch.setattr(epochs, "MAX_EPOCH_JOBS", 2)
    job.epoch.claim("j2")
    with pytest.raises(ProtocolError, match="maximum number of jobs"):
        job.epoch.claim("j3")
    assert parties["a"].current().epoch_id != job.epoch.epoch_id  # a full epoch is replaced


def test_relayed_keys_are_verified(parties: dict[str, EpochKeys], cert_dir: Path) -> None:
    keys = _keys(parties)
    forged = [keys[0], dataclasses.replace(keys[1], not_after=keys[1].not_after + 1), keys[2]]
    with pytest.raises(ProtocolError, match="signature does not verify"):
        parties["a"].prepare(IDS, b"d" * 32, forged)
    with pytest.raises(ProtocolError, match="participant list"):
        parties["a"].prepare(IDS, b"d" * 32, keys[::-1])
    with pytest.raises(ProtocolError, match="not a participant"):
        parties["a"].prepare(("b", "c"), b"d" * 32, keys[1:])
    restarted = EpochKeys(identity(cert_dir, "a"))  # a new process: a new epoch
    with pytest.raises(ProtocolError, match="does not hold"):
        restarted.prepare(IDS, b"d" * 32, keys)


def test_rotation_keeps_the_previous_epoch_until_it_expires(
    parties: dict[str, EpochKeys], clock: Clock
) -> None:
    old = _keys(parties)
    clock.now += epochs.EPOCH_LIFETIME_SECONDS - epochs.ROTATE_MARGIN_SECONDS + 1
    new = _keys(parties)
    assert all(o.epoch_id != n.epoch_id for o, n in zip(old, new, strict=True))
    digests = dict.fromkeys(IDS, b"\x03" * 32)
    assert not _masks(parties, digests, old).any()  # still live
    assert not _masks(parties, digests, new).any()
    clock.now += epochs.ROTATE_MARGIN_SECONDS
    with pytest.raises(ProtocolError, match=r"expired|does not hold"):
        parties["a"].prepare(IDS, b"d" * 32, old)
    # The pair secrets of different epochs differ: a replay under the new epoch is masked anew.
    first = parties["a"].prepare(IDS, b"e" * 32, new).round_mask(0).next(8)
    clock.now += epochs.EPOCH_LIFETIME_SECONDS
    newest = _keys(parties)
    second = parties["a"].prepare(IDS, b"e" * 32, newest).round_mask(0).next(8)
    assert not np.array_equal(first, second)


def test_nothing_secret_in_reprs(parties: dict[str, EpochKeys]) -> None:
    job = parties["a"].prepare(IDS, b"d" * 32, _keys(parties))
    assert "redacted" in repr(job) and "redacted" in repr(job.epoch)

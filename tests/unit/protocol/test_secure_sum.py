"""The whole secure-sum protocol with no network: stages, verification, aggregation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mpc.errors import ProtocolError
from mpc.protocol.secure_sum import PartySession, PartyStage, ShareAggregator
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic
from mpc.ring import decode, encode
from mpc.sharing import masked_chunks
from tests.helpers import identity


def _spec(ids: list[str], job_id: str = "job-1", length: int = 1000) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        statistic=Statistic.VECTOR_SUM,
        dataset="v",
        columns=(ColumnBound("value", -1, 1),),
        frac_bits=16,
        participants=tuple(Participant(pid, 1) for pid in ids),
        vector_length=length,
    )


def _sessions(cert_dir: Path, spec: JobSpec) -> list[PartySession]:
    return [PartySession(spec, identity(cert_dir, pid)) for pid in spec.party_ids]


def _run(sessions: list[PartySession], inputs: list[np.ndarray], round_id: int = 0) -> np.ndarray:
    length = inputs[0].size
    aggregator = ShareAggregator([s.party_id for s in sessions], length)
    for session, values in zip(sessions, inputs, strict=True):
        for offset, chunk in masked_chunks(encode(values, 16), session.round_mask(round_id), 300):
            aggregator.add(session.party_id, offset, chunk)
        aggregator.check_complete(session.party_id)
    return decode(aggregator.reveal(), 16)


@pytest.mark.parametrize("ids", [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d", "e"]])
def test_secure_sum_equals_plain_sum(cert_dir: Path, ids: list[str]) -> None:
    sessions = _sessions(cert_dir, _spec(ids))
    offers = [s.offer() for s in sessions]
    for session in sessions:
        session.agree(offers)
    inputs = [np.linspace(-1, 1, 1000) * (i + 1) / 7 for i in range(len(ids))]
    assert np.allclose(_run(sessions, inputs), np.sum(inputs, axis=0), atol=len(ids) * 2**-16)


def test_several_rounds_use_fresh_masks(cert_dir: Path) -> None:
    sessions = _sessions(cert_dir, _spec(["a", "b", "c"]))
    offers = [s.offer() for s in sessions]
    for session in sessions:
        session.agree(offers)
    m0 = sessions[0].round_mask(0).next(16)
    m1 = sessions[0].round_mask(1).next(16)
    assert not np.array_equal(m0, m1)


def test_a_round_cannot_be_contributed_twice(cert_dir: Path) -> None:
    sessions = _sessions(cert_dir, _spec(["a", "b"]))
    offers = [s.offer() for s in sessions]
    for session in sessions:
        session.agree(offers)
    sessions[0].round_mask(0)
    with pytest.raises(ProtocolError, match="already contributed"):
        sessions[0].round_mask(0)


def test_stages_are_enforced(cert_dir: Path) -> None:
    sessions = _sessions(cert_dir, _spec(["a", "b"]))
    with pytest.raises(ProtocolError, match="not allowed in stage offered"):
        sessions[0].round_mask(0)
    offers = [s.offer() for s in sessions]
    sessions[0].agree(offers)
    with pytest.raises(ProtocolError, match="not allowed in stage agreed"):
        sessions[0].agree(offers)
    sessions[0].close()
    assert sessions[0].stage is PartyStage.CLOSED
    with pytest.raises(ProtocolError):
        sessions[0].round_mask(0)


def test_party_outside_the_participant_list_is_refused(cert_dir: Path) -> None:
    with pytest.raises(ProtocolError, match="not a participant"):
        PartySession(_spec(["a", "b"]), identity(cert_dir, "c"))


def test_substituted_key_is_detected(cert_dir: Path) -> None:
    """A relaying coordinator that swaps b's key for its own is caught by a's verification."""
    sessions = _sessions(cert_dir, _spec(["a", "b"]))
    offers = [s.offer() for s in sessions]
    attacker = PartySession(_spec(["a", "b"]), identity(cert_dir, "b")).offer()
    forged = dataclasses.replace(offers[1], public_key=attacker.public_key)
    with pytest.raises(ProtocolError, match="signature does not verify"):
        sessions[0].agree([offers[0], forged])


def test_equivocating_coordinator_is_detected(cert_dir: Path) -> None:
    """Parties shown different job specs reject each other's offers."""
    a = PartySession(_spec(["a", "b"], length=1000), identity(cert_dir, "a"))
    b = PartySession(_spec(["a", "b"], length=1001), identity(cert_dir, "b"))
    with pytest.raises(ProtocolError, match="different jobs"):
        a.agree([a.offer(), b.offer()])


def test_certificate_from_another_ca_is_refused(cert_dir: Path, other_ca_dir: Path) -> None:
    spec = _spec(["a", "b"])
    a = PartySession(spec, identity(cert_dir, "a"))
    rogue_b = PartySession(spec, identity(other_ca_dir, "b"))
    with pytest.raises(ProtocolError, match="not issued by the consortium CA"):
        a.agree([a.offer(), rogue_b.offer()])


def test_claimed_id_must_match_certificate_name(cert_dir: Path) -> None:
    spec = _spec(["a", "b", "c"])
    a, _, c = _sessions(cert_dir, spec)
    c_offer = c.offer()
    impostor = dataclasses.replace(c_offer, party_id="b")  # c's certificate, claiming to be b
    with pytest.raises(ProtocolError, match="names 'c' but the peer claims to be 'b'"):
        a.agree([a.offer(), impostor, c_offer])


def test_client_certificate_cannot_act_as_a_party(cert_dir: Path) -> None:
    spec = _spec(["a", "b"])
    a = PartySession(spec, identity(cert_dir, "a"))
    b_offer = PartySession(spec, identity(cert_dir, "b")).offer()
    client_cert = (cert_dir / "client.pem").read_bytes()
    with pytest.raises(ProtocolError):
        a.agree([a.offer(), dataclasses.replace(b_offer, certificate_pem=client_cert)])


def test_offers_must_cover_exactly_the_participants(cert_dir: Path) -> None:
    sessions = _sessions(cert_dir, _spec(["a", "b", "c"]))
    offers = [s.offer() for s in sessions]
    with pytest.raises(ProtocolError, match="do not match"):
        sessions[0].agree(offers[:2])
    with pytest.raises(ProtocolError, match="do not match"):
        sessions[0].agree([*offers, offers[1]])


def test_relayed_own_offer_must_be_own_key(cert_dir: Path) -> None:
    sessions = _sessions(cert_dir, _spec(["a", "b"]))
    offers = [s.offer() for s in sessions]
    other = PartySession(_spec(["a", "b"]), identity(cert_dir, "a")).offer()
    with pytest.raises(ProtocolError, match="not its own key"):
        sessions[0].agree([other, offers[1]])


class TestAggregator:
    def test_wrong_length_is_refused(self) -> None:
        aggregator = ShareAggregator(["a", "b"], 10)
        with pytest.raises(ProtocolError, match="longer than the expected 10"):
            aggregator.add("a", 0, np.zeros(11, dtype=np.uint64))
        aggregator.add("b", 0, np.zeros(9, dtype=np.uint64))
        with pytest.raises(ProtocolError, match="has 9 words, expected 10"):
            aggregator.check_complete("b")

    def test_nothing_is_revealed_while_a_share_is_missing(self) -> None:
        aggregator = ShareAggregator(["a", "b", "c"], 4)
        aggregator.add("a", 0, np.ones(4, dtype=np.uint64))
        aggregator.add("b", 0, np.ones(4, dtype=np.uint64))
        with pytest.raises(ProtocolError, match=r"incomplete from \['c'\]"):
            aggregator.reveal()

    def test_out_of_order_and_foreign_chunks(self) -> None:
        aggregator = ShareAggregator(["a", "b"], 10)
        with pytest.raises(ProtocolError, match="offset 5, expected 0"):
            aggregator.add("a", 5, np.zeros(5, dtype=np.uint64))
        with pytest.raises(ProtocolError, match="not a participant"):
            aggregator.add("z", 0, np.zeros(5, dtype=np.uint64))

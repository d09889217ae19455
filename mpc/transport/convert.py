"""Proto <-> domain conversion: the only module that touches ``_pb2`` message types.

Vectors travel as little-endian 64-bit words in chunks of about 1 MiB (``CHUNK_WORDS``); their
encoding lives in :mod:`mpc.transport.convert_vectors` and is re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mpc.budget_status import BudgetStatus
from mpc.errors import QueryError
from mpc.proto.v1 import common_pb2, coordinator_pb2, party_pb2
from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.frame import Condition, GroupKey
from mpc.protocol.query import Query, group_key_from_json
from mpc.protocol.schema import ColumnInfo, DatasetInfo
from mpc.protocol.secure_sum import SignedKeyOffer
from mpc.protocol.spec import (
    ClientAuth,
    ColumnBound,
    JobSpec,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
    TrainingSpec,
    edges_to_bytes,
)
from mpc.transport.convert_vectors import float_chunks as float_chunks
from mpc.transport.convert_vectors import floats_from_bytes as floats_from_bytes
from mpc.transport.convert_vectors import floats_from_chunks as floats_from_chunks
from mpc.transport.convert_vectors import floats_to_bytes as floats_to_bytes


def statistic_from_name(name: str) -> Statistic:
    try:
        return Statistic(name)
    except ValueError:
        known = ", ".join(s.value for s in Statistic)
        raise QueryError(f"unknown statistic {name!r} (known: {known})") from None


def query_from_proto(message: coordinator_pb2.Query) -> Query:
    """A client's query message as the domain :class:`Query` (what the client signs)."""
    return Query(
        statistic=statistic_from_name(message.statistic),
        dataset=message.dataset,
        columns=tuple(message.columns),
        bounds=tuple(ColumnBound(b.column, b.lo, b.hi) for b in message.bounds),
        # Explicit presence (proto3 optional): 0 is a choice, unset is the coordinator's.
        frac_bits=message.frac_bits if message.HasField("frac_bits") else None,
        parties=tuple(message.parties),
        noise=noise_mode_from_name(message.noise),
        epsilon=message.epsilon,
        delta=message.delta,
        training=training_from_proto(message.training)
        if message.HasField("training") and not message.resume_from
        else None,
        resume_from=message.resume_from,
        bin_edges=edges_from_bytes(message.bin_edges),
        where=where_from_json(message.where_json),
        group_by=group_by_from_json(message.group_by_json),
        quantiles=edges_from_bytes(message.quantiles),
    )


def where_to_json(where: Condition | None) -> str:
    return "" if where is None else json.dumps(where.to_json(), separators=(",", ":"))


def where_from_json(text: str) -> Condition | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return Condition.from_json(data)
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError):
        raise QueryError("malformed where condition") from None


def group_by_to_json(keys: Sequence[GroupKey]) -> str:
    return json.dumps([k.to_json() for k in keys], separators=(",", ":")) if keys else ""


def group_by_from_json(text: str) -> tuple[GroupKey, ...]:
    if not text:
        return ()
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("not a list")
        return tuple(group_key_from_json(k) for k in data)
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError):
        raise QueryError("malformed group_by keys") from None


def client_auth_to_proto(auth: ClientAuth | None) -> common_pb2.ClientAuth | None:
    if auth is None:
        return None
    return common_pb2.ClientAuth(
        query=auth.query,
        nonce=auth.nonce,
        timestamp_ms=auth.timestamp_ms,
        signature=auth.signature,
        certificate_pem=auth.certificate_pem,
    )


def client_auth_from_proto(message: common_pb2.ClientAuth) -> ClientAuth:
    return ClientAuth(
        query=message.query,
        nonce=message.nonce,
        timestamp_ms=message.timestamp_ms,
        signature=message.signature,
        certificate_pem=message.certificate_pem,
    )


def spec_to_proto(spec: JobSpec) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(
        client=client_auth_to_proto(spec.client),
        job_id=spec.job_id,
        statistic=spec.statistic.value,
        dataset=spec.dataset,
        columns=[common_pb2.ColumnBounds(column=c.column, lo=c.lo, hi=c.hi) for c in spec.columns],
        frac_bits=spec.frac_bits,
        participants=[
            common_pb2.Participant(party_id=p.party_id, max_rows=p.max_rows)
            for p in spec.participants
        ],
        vector_length=spec.vector_length,
        protocol_version=spec.protocol_version,
        privacy=None
        if spec.privacy is None
        else common_pb2.PrivacySpec(
            noise=spec.privacy.noise.value,
            epsilon=spec.privacy.epsilon,
            delta=spec.privacy.delta,
            colluders=spec.privacy.colluders,
        ),
        training=None if spec.training is None else training_to_proto(spec.training),
        bin_edges=edges_to_bytes(spec.bin_edges) if spec.bin_edges else b"",
        where_json=where_to_json(spec.where),
        group_by_json=group_by_to_json(spec.group_by),
        quantiles=edges_to_bytes(spec.quantiles) if spec.quantiles else b"",
    )


def training_to_proto(training: TrainingSpec) -> common_pb2.TrainingSpec:
    return common_pb2.TrainingSpec(
        model=training.model.value,
        label=training.label,
        rounds=training.rounds,
        lr=training.lr,
        l2=training.l2,
        clip=training.clip,
        batch_rate=training.batch_rate,
        method=training.method.value,
        tol=training.tol,
        holdout=training.holdout,
        standardise=training.standardise.value,
        start_round=training.start_round,
    )


def training_from_proto(message: common_pb2.TrainingSpec) -> TrainingSpec:
    return TrainingSpec(
        model=message.model,  # type: ignore[arg-type]  # checked in TrainingSpec
        label=message.label,
        rounds=message.rounds,
        lr=message.lr,
        l2=message.l2,
        clip=message.clip,
        batch_rate=message.batch_rate,
        method=message.method or "gd",  # type: ignore[arg-type]
        tol=message.tol,
        holdout=message.holdout,
        standardise=message.standardise or "secure",  # type: ignore[arg-type]
        start_round=message.start_round,
    )


def noise_mode_from_name(name: str) -> NoiseMode:
    try:
        return NoiseMode(name or "none")
    except ValueError:
        raise QueryError(
            f"unknown noise mode {name!r} (use none, central or distributed)"
        ) from None


def spec_from_proto(message: common_pb2.JobSpec) -> JobSpec:
    return JobSpec(
        job_id=message.job_id,
        statistic=statistic_from_name(message.statistic),
        dataset=message.dataset,
        columns=tuple(ColumnBound(c.column, c.lo, c.hi) for c in message.columns),
        frac_bits=message.frac_bits,
        participants=tuple(Participant(p.party_id, p.max_rows) for p in message.participants),
        vector_length=message.vector_length,
        protocol_version=message.protocol_version,
        privacy=PrivacySpec(
            noise=noise_mode_from_name(message.privacy.noise),
            epsilon=message.privacy.epsilon,
            delta=message.privacy.delta,
            colluders=message.privacy.colluders,
        )
        if message.HasField("privacy")
        else None,
        training=training_from_proto(message.training) if message.HasField("training") else None,
        bin_edges=edges_from_bytes(message.bin_edges),
        client=client_auth_from_proto(message.client) if message.HasField("client") else None,
        where=where_from_json(message.where_json),
        group_by=group_by_from_json(message.group_by_json),
        quantiles=edges_from_bytes(message.quantiles),
    )


def edges_from_bytes(data: bytes) -> tuple[float, ...]:
    """Histogram bin edges from little-endian float64 bytes (empty: none)."""
    return tuple(floats_from_bytes(data).tolist())


def budget_to_proto(status: BudgetStatus) -> common_pb2.BudgetStatus:
    return common_pb2.BudgetStatus(
        dataset=status.dataset,
        charges=status.charges,
        spent_rho=status.spent_rho,
        spent_epsilon=status.spent_epsilon,
        has_budget=status.budget_epsilon is not None,
        budget_epsilon=status.budget_epsilon or 0.0,
        budget_delta=status.budget_delta or 0.0,
        remaining_epsilon=status.remaining_epsilon or 0.0,
    )


def budget_from_proto(message: common_pb2.BudgetStatus) -> BudgetStatus:
    return BudgetStatus(
        dataset=message.dataset,
        charges=message.charges,
        spent_rho=message.spent_rho,
        spent_epsilon=message.spent_epsilon,
        budget_epsilon=message.budget_epsilon if message.has_budget else None,
        budget_delta=message.budget_delta if message.has_budget else None,
        remaining_epsilon=message.remaining_epsilon if message.has_budget else None,
    )


def offer_to_proto(offer: SignedKeyOffer) -> party_pb2.SignedKey:
    return party_pb2.SignedKey(
        party_id=offer.party_id,
        public_key=offer.public_key,
        signature=offer.signature,
        certificate_pem=offer.certificate_pem,
    )


def offer_from_proto(message: party_pb2.SignedKey) -> SignedKeyOffer:
    return SignedKeyOffer(
        party_id=message.party_id,
        public_key=bytes(message.public_key),
        signature=bytes(message.signature),
        certificate_pem=bytes(message.certificate_pem),
    )


def epoch_key_to_proto(key: SignedEpochKey) -> party_pb2.SignedEpochKey:
    return party_pb2.SignedEpochKey(
        party_id=key.party_id,
        epoch_id=key.epoch_id,
        public_key=key.public_key,
        not_after=key.not_after,
        signature=key.signature,
        certificate_pem=key.certificate_pem,
    )


def epoch_key_from_proto(message: party_pb2.SignedEpochKey) -> SignedEpochKey:
    return SignedEpochKey(
        party_id=message.party_id,
        epoch_id=bytes(message.epoch_id),
        public_key=bytes(message.public_key),
        not_after=int(message.not_after),
        signature=bytes(message.signature),
        certificate_pem=bytes(message.certificate_pem),
    )


def dataset_to_proto(info: DatasetInfo) -> common_pb2.DatasetSchema:
    return common_pb2.DatasetSchema(
        name=info.name,
        kind=info.kind,
        columns=[
            common_pb2.ColumnSchema(
                name=c.name,
                has_bounds=c.lo is not None,
                lo=c.lo or 0.0,
                hi=c.hi or 0.0,
                description=c.description,
                available=c.available,
                categories=list(c.categories),
            )
            for c in info.columns
        ],
        max_rows=info.max_rows,
        vector_length=info.vector_length,
        description=info.description,
        available=info.available,
        participation=info.participation,
        cohort=list(info.cohort),
        min_parties=info.min_parties,
        max_bins=info.max_bins,
        exact_filters=info.exact_filters,
    )


def dataset_from_proto(message: common_pb2.DatasetSchema) -> DatasetInfo:
    return DatasetInfo(
        name=message.name,
        kind=message.kind,
        columns=tuple(
            ColumnInfo(
                c.name,
                c.lo if c.has_bounds else None,
                c.hi if c.has_bounds else None,
                c.description,
                c.available,
                tuple(c.categories),
            )
            for c in message.columns
        ),
        max_rows=message.max_rows,
        vector_length=message.vector_length,
        description=message.description,
        available=message.available,
        participation=message.participation,
        cohort=tuple(message.cohort),
        min_parties=message.min_parties,
        max_bins=message.max_bins,
        exact_filters=message.exact_filters,
    )


__all__ = [
    "client_auth_from_proto",
    "client_auth_to_proto",
    "coordinator_pb2",
    "dataset_from_proto",
    "dataset_to_proto",
    "edges_from_bytes",
    "float_chunks",
    "floats_from_chunks",
    "offer_from_proto",
    "offer_to_proto",
    "query_from_proto",
    "spec_from_proto",
    "spec_to_proto",
    "statistic_from_name",
    "training_from_proto",
    "training_to_proto",
]

"""What a client asks for (:class:`Query`), its canonical encoding, and the client's signature.

Pure module. A client signs the canonical JSON of its query (sorted keys, no spaces) together
with a fresh nonce and a timestamp, with the key of its certificate (:func:`sign_query`). The
coordinator puts that :class:`ClientAuth` into the job spec unchanged, and every party checks it
itself (:func:`verify_client`): the certificate chains to the consortium CA and has a client
role, the signature holds, the query is fresh and not replayed, and the spec the coordinator
built matches what the client asked for (:func:`check_spec_matches`). A party therefore knows
who asked, and what, even if the coordinator lies.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, replace

import numpy as np
from cryptography import x509

from mpc.errors import AccessDeniedError, ProtocolError, QueryError
from mpc.identity import Identity, Role, cert_name, cert_role, verify_certificate
from mpc.protocol.frame import Condition, GroupKey
from mpc.protocol.spec import (
    BINNED_STATISTICS,
    ClientAuth,
    ColumnBound,
    JobSpec,
    NoiseMode,
    PrivacySpec,
    Statistic,
    TrainingSpec,
    edges_to_bytes,
)
from mpc.protocol.validation import (
    check_bin_edges,
    check_bounds,
    check_frame,
    validate_privacy,
    validate_training,
)
from mpc.sharing import sign_payload, verify_payload

_DOMAIN_QUERY = b"mpc/v1/client-query"
#: A signed query older (or further in the future) than this is refused as stale.
MAX_QUERY_AGE_SECONDS = 300.0


@dataclass(frozen=True)
class Query:
    """What a client asks for. Bounds missing here come from the parties' public schemas."""

    statistic: Statistic
    dataset: str
    columns: tuple[str, ...] = ()
    bounds: tuple[ColumnBound, ...] = ()
    frac_bits: int | None = None
    parties: tuple[str, ...] = ()
    noise: NoiseMode = NoiseMode.NONE
    epsilon: float = 0.0
    delta: float = 0.0
    #: Training jobs (statistic ``train``): columns are the features then the label.
    training: TrainingSpec | None = None
    #: Continue the training job with this id from its last completed round.
    resume_from: str = ""
    #: Histogram bin edges (statistic ``histogram``): strictly increasing, at least 2; values
    #: outside ``[edges[0], edges[-1]]`` are counted in the first/last bin.
    bin_edges: tuple[float, ...] = ()
    #: Public row filter (None: every row); see :mod:`mpc.protocol.where` for the syntax.
    where: Condition | None = None
    #: Group keys: the statistic is computed per cell (categories or bin edges filled in).
    group_by: tuple[GroupKey, ...] = ()
    #: Quantile probabilities in (0, 1) (statistic ``quantile`` only).
    quantiles: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_by", tuple(self.group_by))
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))

    def validate(self) -> None:
        if self.resume_from and self.statistic is Statistic.TRAIN:
            return  # the service continues the stored query of that job
        if (self.statistic is Statistic.TRAIN) != (self.training is not None):
            raise QueryError("training parameters go with a training job, and only with it")
        if self.training is not None:
            privacy = PrivacySpec(self.noise, self.epsilon, self.delta, 0)
            validate_training(
                self.training,
                list(self.columns),
                privacy if self.noise is not NoiseMode.NONE else None,
            )
        if self.noise is not NoiseMode.NONE:
            # Structural checks only; colluders are checked once the roster is known.
            validate_privacy(
                PrivacySpec(self.noise, self.epsilon, self.delta, 0), self.statistic, 2
            )
        elif self.epsilon or self.delta:
            raise QueryError("epsilon/delta given without a noise mode (central or distributed)")
        for bound in self.bounds:
            check_bounds(bound.column, bound.lo, bound.hi)
        if len(set(self.columns)) != len(self.columns):
            raise QueryError("a column is listed twice")
        extra = {b.column for b in self.bounds} - set(self.columns)
        if self.statistic is not Statistic.VECTOR_SUM and extra:
            raise QueryError(f"bounds given for columns not in the query: {sorted(extra)}")
        if (
            self.statistic in (Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE)
            and not self.columns
        ):
            raise QueryError(f"{self.statistic.value} needs at least one --column")
        if self.statistic in BINNED_STATISTICS:
            what = self.statistic.value
            if len(self.columns) != 1:
                raise QueryError(f"{what} needs exactly one --column")
            if self.bounds:
                raise QueryError(f"a {what}'s bounds are its first and last bin edges")
            check_bin_edges(self.bin_edges)
        elif self.bin_edges:
            raise QueryError("bin edges (--bins) are only for histogram and quantile")
        self._validate_frame()

    def _validate_frame(self) -> None:
        check_frame(self.statistic, self.where, self.group_by)
        if self.quantiles and self.statistic is not Statistic.QUANTILE:
            raise QueryError("quantiles are only for the quantile statistic")
        if not all(0 < q < 1 for q in self.quantiles):
            raise QueryError("quantile probabilities must be between 0 and 1 (exclusive)")

    def to_json(self) -> dict[str, object]:
        return {
            "statistic": self.statistic.value,
            "dataset": self.dataset,
            "columns": list(self.columns),
            "bounds": {b.column: [b.lo, b.hi] for b in self.bounds},
            "frac_bits": self.frac_bits,
            "parties": list(self.parties),
            "noise": self.noise.value,
            "epsilon": self.epsilon,
            "delta": self.delta,
            **({} if self.training is None else {"training": _training_json(self.training)}),
            **({"resume_from": self.resume_from} if self.resume_from else {}),
            # Compact for 2^20 bins: base64 of the little-endian float64 edges.
            **(
                {"bin_edges": base64.b64encode(edges_to_bytes(self.bin_edges)).decode()}
                if self.bin_edges
                else {}
            ),
            # Frames enter only when used: the canonical JSON of other queries is unchanged.
            **({"where": self.where.to_json()} if self.where is not None else {}),
            **({"group_by": [k.to_json() for k in self.group_by]} if self.group_by else {}),
            **({"quantiles": list(self.quantiles)} if self.quantiles else {}),
        }


def query_from_json(data: dict[str, object]) -> Query:
    """Inverse of :meth:`Query.to_json` (job records, resumed training)."""
    bounds = data.get("bounds") or {}
    assert isinstance(bounds, dict)
    training = data.get("training")
    where = data.get("where")
    if where is not None and not isinstance(where, dict):
        raise ValueError("malformed where condition")
    group_by = data.get("group_by") or []
    quantiles = data.get("quantiles") or []
    if not isinstance(group_by, list) or not isinstance(quantiles, list):
        raise ValueError("malformed group_by or quantiles")
    return Query(
        statistic=Statistic(str(data["statistic"])),
        dataset=str(data["dataset"]),
        columns=tuple(data.get("columns") or ()),  # type: ignore[arg-type]
        bounds=tuple(ColumnBound(c, lo, hi) for c, (lo, hi) in bounds.items()),
        frac_bits=data.get("frac_bits"),  # type: ignore[arg-type]
        parties=tuple(data.get("parties") or ()),  # type: ignore[arg-type]
        noise=NoiseMode(str(data.get("noise") or "none")),
        epsilon=float(data.get("epsilon") or 0.0),  # type: ignore[arg-type]
        delta=float(data.get("delta") or 0.0),  # type: ignore[arg-type]
        training=TrainingSpec(**training) if isinstance(training, dict) else None,
        resume_from=str(data.get("resume_from") or ""),
        bin_edges=tuple(
            np.frombuffer(base64.b64decode(str(data.get("bin_edges") or "")), "<f8").tolist()
        ),
        where=Condition.from_json(where) if isinstance(where, dict) else None,
        group_by=tuple(group_key_from_json(k) for k in group_by),
        quantiles=tuple(float(q) for q in quantiles),
    )


def group_key_from_json(data: object) -> GroupKey:
    if not isinstance(data, dict):
        raise ValueError("a group_by key is an object")
    categories = data.get("categories") or []
    edges = data.get("edges") or []
    if not isinstance(categories, list) or not isinstance(edges, list):
        raise ValueError("malformed group_by key")
    return GroupKey(
        str(data["column"]),
        categories=tuple(str(c) for c in categories),
        edges=tuple(float(e) for e in edges),
    )


def _training_json(training: TrainingSpec) -> dict[str, object]:
    out: dict[str, object] = dict(training.__dict__)
    for key in ("model", "method", "standardise"):
        out[key] = getattr(training, key).value
    return out


def edges_digest(edges: tuple[float, ...]) -> str:
    """SHA-256 (hex) of histogram edges as little-endian float64, or "" for none."""
    return hashlib.sha256(edges_to_bytes(edges)).hexdigest() if edges else ""


def canonical_query(query: Query) -> bytes:
    """The bytes a client signs: its query as sorted-key JSON without spaces.

    Histogram edges enter as their SHA-256 (``bin_edges_sha256``), as in the spec digest: the
    edges themselves (up to 8 MiB) travel once, in the request's query message.
    """
    data = query.to_json()
    data.pop("bin_edges", None)
    if query.bin_edges:
        data["bin_edges_sha256"] = edges_digest(query.bin_edges)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class SignedQuery:
    """A verified signed query: who signed it, what it asks (without histogram edges, which
    it binds by ``edges_sha256``)."""

    client: str
    query: Query
    edges_sha256: str

    def with_edges(self, edges: tuple[float, ...]) -> Query:
        """The query with its histogram edges, checked against the signed digest."""
        if edges_digest(edges) != self.edges_sha256:
            raise AccessDeniedError(
                f"client {self.client!r}: the histogram edges are not the ones it signed"
            )
        return replace(self.query, bin_edges=edges)


def _signed_payload(query: bytes, nonce: bytes, timestamp_ms: int) -> bytes:
    fields = (_DOMAIN_QUERY, query, nonce, timestamp_ms.to_bytes(8, "big", signed=True))
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def sign_query(identity: Identity, query: Query, now: float | None = None) -> ClientAuth:
    """Sign ``query`` with the client's certificate key, with a fresh nonce and the time."""
    body = canonical_query(query)
    nonce = os.urandom(16)
    stamp = int(1000 * (time.time() if now is None else now))
    signature = sign_payload(identity.signing_key(), _signed_payload(body, nonce, stamp))
    return ClientAuth(body, nonce, stamp, signature, identity.cert_pem)


def verify_client(auth: ClientAuth, ca: x509.Certificate, now: float | None = None) -> SignedQuery:
    """Check a client's signed query; return who signed it and what it asks.

    Raises :class:`AccessDeniedError` for a certificate not issued by the consortium CA, not
    a client's, expired, a signature that does not verify, or a stale timestamp; and
    :class:`QueryError` for a signed text that is not a query.
    """
    try:
        cert = x509.load_pem_x509_certificate(auth.certificate_pem)
        name, role = cert_name(cert), cert_role(cert)
    except (ValueError, ProtocolError):
        raise AccessDeniedError("the signed query carries an unreadable certificate") from None
    if role not in (Role.CLIENT.value, Role.ADMIN.value):
        raise AccessDeniedError(f"the query is signed by {name!r} ({role}), not by a client")
    moment = time.time() if now is None else now
    try:
        verify_certificate(
            cert,
            ca,
            expected_name=name,
            expected_role=Role(role),
            now=dt.datetime.fromtimestamp(moment, dt.UTC),
        )
    except Exception as exc:  # ProtocolError from verify_certificate, with its reason
        raise AccessDeniedError(f"client {name!r}: {exc}") from None
    payload = _signed_payload(auth.query, auth.nonce, auth.timestamp_ms)
    if len(auth.nonce) < 16 or not verify_payload(cert.public_key(), payload, auth.signature):
        raise AccessDeniedError(f"client {name!r}: the signature on the query does not verify")
    age = moment - auth.timestamp_ms / 1000
    if abs(age) > MAX_QUERY_AGE_SECONDS:
        raise AccessDeniedError(
            f"client {name!r}: the signed query is stale ({age:.0f} s old; at most "
            f"{MAX_QUERY_AGE_SECONDS:.0f} s): check the clocks, then submit it again"
        )
    try:
        data = json.loads(auth.query)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        edges = str(data.pop("bin_edges_sha256", ""))
        data.pop("bin_edges", None)
        query = query_from_json(data)
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
        raise QueryError(f"client {name!r}: the signed text is not a query") from exc
    return SignedQuery(name, query, edges)


def check_spec_matches(spec: JobSpec, signed: SignedQuery) -> None:
    """Refuse a spec that is not what the client asked for (a coordinator that lies).

    Fields the client left open (bounds from the schema, default ``frac_bits``, all parties)
    are the coordinator's to fill; everything the client said must hold. A resumed training
    job is checked by statistic and dataset only: its other parameters come from the stored
    job the client names.
    """

    query = signed.query

    def differ(what: str) -> QueryError:
        return QueryError(f"the job spec does not match the client's signed query ({what})")

    if spec.statistic is not query.statistic:
        raise differ("statistic")
    if query.resume_from and query.statistic is Statistic.TRAIN:
        if query.dataset and spec.dataset != query.dataset:
            raise differ("dataset")
        return
    if spec.dataset != query.dataset:
        raise differ("dataset")
    names = tuple(c.column for c in spec.columns)
    if spec.statistic is not Statistic.VECTOR_SUM and names != tuple(query.columns):
        raise differ("columns")
    declared = {c.column: (c.lo, c.hi) for c in spec.columns}
    for bound in query.bounds:
        if declared.get(bound.column) != (bound.lo, bound.hi):
            raise differ(f"bounds of {bound.column!r}")
    if query.frac_bits is not None and spec.frac_bits != query.frac_bits:
        raise differ("frac_bits")
    if query.parties and set(spec.party_ids) != set(query.parties):
        raise differ("parties")
    if query.noise is NoiseMode.NONE:
        if spec.privacy is not None:
            raise differ("privacy")
    elif spec.privacy is None or (spec.privacy.noise, spec.privacy.epsilon, spec.privacy.delta) != (
        query.noise,
        query.epsilon,
        query.delta,
    ):
        raise differ("privacy")
    if spec.training != query.training:
        raise differ("training")
    if edges_digest(spec.bin_edges) != signed.edges_sha256:
        raise differ("bin edges")
    if spec.where != query.where:
        raise differ("where")
    if spec.group_by != query.group_by:
        raise differ("group_by")
    if spec.quantiles != query.quantiles:
        raise differ("quantiles")


__all__ = [
    "MAX_QUERY_AGE_SECONDS",
    "Query",
    "SignedQuery",
    "canonical_query",
    "check_spec_matches",
    "group_key_from_json",
    "query_from_json",
    "sign_query",
    "verify_client",
]

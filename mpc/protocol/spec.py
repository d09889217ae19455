"""Job specs: what a job computes, over which data, with whom.

A :class:`JobSpec` is the one object every party checks before touching data. Its canonical
encoding (sorted-key JSON, shortest float repr) is hashed into the *spec digest*, which every
party signs together with its ephemeral key: parties that verify each other's signatures over
their own digest have thereby checked that the coordinator showed them all the same job.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np
from cryptography import x509

from mpc.errors import ProtocolError, QueryError
from mpc.identity import cert_name
from mpc.protocol.frame import Condition, Frame, GroupKey
from mpc.sharing import spec_digest_of

PROTOCOL_VERSION = 1
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,127}$")


class Statistic(StrEnum):
    SUM = "sum"
    COUNT = "count"
    MEAN = "mean"
    VECTOR_SUM = "vector_sum"
    TRAIN = "train"  # one round of a training job (see TrainingSpec and mpc.training)
    VARIANCE = "variance"  # sample variance per column (centred moments, see mpc.stats)
    HISTOGRAM = "histogram"  # counts per bin of one column over declared bin edges
    COVARIANCE = "covariance"  # covariance matrix of the columns (one Gram round)
    CORRELATION = "correlation"  # Pearson correlation matrix (the same Gram round)
    CONTINGENCY = "contingency"  # counts over two group keys, with a chi-square test
    TTEST = "ttest"  # Welch's t-test per column between the two cells of one group key
    QUANTILE = "quantile"  # quantiles of one column from a fine (DP: hierarchical) histogram


class NoiseMode(StrEnum):
    NONE = "none"
    CENTRAL = "central"  # the coordinator adds noise after reconstruction (it sees the sum)
    DISTRIBUTED = "distributed"  # each party adds its share of noise before masking


#: Statistics with a record-level sensitivity, so DP noise can be calibrated for them.
DP_STATISTICS = frozenset(
    {
        Statistic.SUM,
        Statistic.COUNT,
        Statistic.MEAN,
        Statistic.TRAIN,
        Statistic.VARIANCE,
        Statistic.HISTOGRAM,
        Statistic.COVARIANCE,
        Statistic.CORRELATION,
        Statistic.CONTINGENCY,
        Statistic.TTEST,
        Statistic.QUANTILE,
    }
)

#: Statistics computed over a frame (mpc.protocol.frame): they take ``where`` and ``group_by``.
FRAME_STATISTICS = frozenset(
    {
        Statistic.SUM,
        Statistic.COUNT,
        Statistic.MEAN,
        Statistic.VARIANCE,
        Statistic.HISTOGRAM,
        Statistic.COVARIANCE,
        Statistic.CORRELATION,
        Statistic.CONTINGENCY,
        Statistic.TTEST,
        Statistic.QUANTILE,
    }
)
#: Statistics whose values come from bin edges (``bin_edges``).
BINNED_STATISTICS = frozenset({Statistic.HISTOGRAM, Statistic.QUANTILE})
#: Most group keys of one job, and most nodes of one ``where`` condition.
MAX_GROUP_KEYS = 4
MAX_CONDITION_NODES = 64

#: Largest number of histogram bins (the output vector has one entry per bin); each party caps
#: it further with its own ``max_bins`` policy.
MAX_HISTOGRAM_BINS = 1 << 20
#: Largest learning rate a training spec may carry (on standardised features a stable step
#: is below 2; anything near this only makes the model diverge).
MAX_LR = 100.0


class Model(StrEnum):
    LINEAR = "linear"
    LOGISTIC = "logistic"


class Method(StrEnum):
    GD = "gd"  # gradient descent on clipped per-example gradients
    NEWTON = "newton"  # Newton/IRLS: gradient and Hessian upper triangle every round
    CLOSED_FORM = "closed_form"  # ridge linear regression from one secure Gram matrix


class Standardise(StrEnum):
    SECURE = "secure"  # means/variances from a secure sum over all parties (round 0)
    BOUNDS = "bounds"  # data-independent: (x - (lo+hi)/2) / ((hi-lo)/2) from declared bounds
    NONE = "none"


@dataclass(frozen=True)
class TrainingSpec:
    """A training job over rounds (``statistic == train``); part of the signed spec.

    The job's columns are the features followed by the label (last). ``clip`` bounds the L2
    norm of every per-example gradient (0: the safety clip ``mpc.training.clip_norm``
    derives from the declared bounds); ``lr`` 0 asks the coordinator for an automatic, safe
    step (``mpc.training.auto_step``);
    ``batch_rate`` > 0 samples rows per round (Poisson, CSPRNG) at every party; ``rounds``
    counts model updates in this job (a resumed job counts only the rounds it still runs,
    starting at ``start_round``).
    """

    model: Model
    label: str
    rounds: int
    lr: float = 0.5
    l2: float = 0.0
    clip: float = 0.0
    batch_rate: float = 0.0
    method: Method = Method.GD
    tol: float = 0.0
    holdout: float = 0.0
    standardise: Standardise = Standardise.SECURE
    start_round: int = 0

    def __post_init__(self) -> None:
        for name in ("lr", "l2", "clip", "batch_rate", "tol", "holdout"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name, kind in (("model", Model), ("method", Method), ("standardise", Standardise)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                known = ", ".join(k.value for k in kind)
                value = getattr(self, name)
                raise QueryError(f"unknown {name} {value!r} (known: {known})") from None


@dataclass(frozen=True)
class PrivacySpec:
    """Differential-privacy parameters of a job; every party derives its noise from these.

    ``delta == 0`` asks for pure epsilon-DP (discrete Laplace, central mode only); otherwise
    the discrete Gaussian is calibrated through zCDP. ``colluders`` is ``t``, the number of
    parties that may collude with the coordinator; distributed noise is sized for it.
    """

    noise: NoiseMode
    epsilon: float
    delta: float
    colluders: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", float(self.epsilon))
        object.__setattr__(self, "delta", float(self.delta))


@dataclass(frozen=True)
class ColumnBound:
    """A column and its declared bounds; every value is clamped to ``[lo, hi]``."""

    column: str
    lo: float
    hi: float

    def __post_init__(self) -> None:
        # Canonical encoding must not depend on whether a caller wrote 120 or 120.0.
        object.__setattr__(self, "lo", float(self.lo))
        object.__setattr__(self, "hi", float(self.hi))


@dataclass(frozen=True)
class Participant:
    """A party taking part in a job and its public row limit."""

    party_id: str
    max_rows: int


@dataclass(frozen=True, repr=False)
class ClientAuth:
    """The client's own signature on its query (see :mod:`mpc.protocol.query`).

    ``query`` is the canonical JSON the client signed, byte for byte; the signature covers it
    with the nonce and the timestamp (milliseconds since the epoch).
    """

    query: bytes
    nonce: bytes
    timestamp_ms: int
    signature: bytes
    certificate_pem: bytes

    def __repr__(self) -> str:
        return f"ClientAuth(<{len(self.query)} bytes of query, signed>)"

    def digest_fields(self) -> dict[str, object]:
        """What the spec digest binds: every byte of the signed query and its signature."""
        return {
            "query_sha256": hashlib.sha256(self.query).hexdigest(),
            "nonce": self.nonce.hex(),
            "timestamp_ms": self.timestamp_ms,
            "signature_sha256": hashlib.sha256(self.signature).hexdigest(),
            "certificate_sha256": hashlib.sha256(self.certificate_pem).hexdigest(),
        }


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    statistic: Statistic
    dataset: str
    columns: tuple[ColumnBound, ...]
    frac_bits: int
    participants: tuple[Participant, ...]
    vector_length: int = 0
    privacy: PrivacySpec | None = None
    protocol_version: int = PROTOCOL_VERSION
    training: TrainingSpec | None = None
    #: Histogram bin edges (statistic ``histogram`` only); empty for every other statistic.
    bin_edges: tuple[float, ...] = ()
    #: The client's signed query; parties verify it themselves (None: an unsigned job,
    #: which parties refuse unless their config says require_signed_queries = false).
    client: ClientAuth | None = None
    #: Public row filter (None: every row); see :mod:`mpc.protocol.frame`.
    where: Condition | None = None
    #: Public group keys: the statistic is computed per cell, row-major (first key slowest).
    group_by: tuple[GroupKey, ...] = ()
    #: Quantile probabilities in (0, 1) (statistic ``quantile`` only).
    quantiles: tuple[float, ...] = ()
    _digest: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bin_edges", tuple(float(e) for e in self.bin_edges))
        object.__setattr__(self, "group_by", tuple(self.group_by))
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        from mpc.protocol.validation import validate_spec  # validation imports this module

        validate_spec(self)
        object.__setattr__(self, "_digest", spec_digest_of(self.canonical()))

    @property
    def client_id(self) -> str:
        """The name in the signing client's certificate ("" for an unsigned job).

        Informational (logs, audit); parties authenticate with
        :func:`mpc.protocol.query.verify_client` before trusting it.
        """
        if self.client is None:
            return ""
        try:
            return cert_name(x509.load_pem_x509_certificate(self.client.certificate_pem))
        except (ValueError, ProtocolError):
            return ""

    @property
    def party_ids(self) -> tuple[str, ...]:
        return tuple(p.party_id for p in self.participants)

    @property
    def frame(self) -> Frame:
        """The rows and cells this job's statistic is computed over."""
        return Frame(self.dataset, self.where, self.group_by)

    @property
    def total_max_rows(self) -> int:
        return sum(p.max_rows for p in self.participants)

    def participant(self, party_id: str) -> Participant:
        for participant in self.participants:
            if participant.party_id == party_id:
                return participant
        raise QueryError(f"party {party_id!r} is not a participant of job {self.job_id}")

    def canonical(self) -> bytes:
        # Histogram edges enter as the SHA-256 of their little-endian float64 bytes (binding
        # like the values themselves, without a megabyte of JSON for 2^20 bins).
        data = asdict(_without_edges(self))
        data.pop("_digest")
        data.pop("client")  # digests of unsigned jobs are unchanged
        if self.client is not None:
            data["client"] = self.client.digest_fields()
        data["statistic"] = self.statistic.value
        if self.privacy is not None:
            data["privacy"]["noise"] = self.privacy.noise.value
        data.pop("bin_edges")  # digests of non-histogram jobs are unchanged
        if self.bin_edges:
            data["bin_edges_sha256"] = hashlib.sha256(edges_to_bytes(self.bin_edges)).hexdigest()
        # Frames and quantiles enter only when used: digests of other jobs are unchanged.
        data.pop("where")
        data.pop("group_by")
        data.pop("quantiles")
        if self.where is not None:
            data["where"] = self.where.to_json()
        if self.group_by:
            data["group_by"] = [k.to_json() for k in self.group_by]
        if self.quantiles:
            data["quantiles"] = list(self.quantiles)
        if self.training is None:
            data.pop("training")  # digests of non-training jobs are unchanged
        else:
            for key in ("model", "method", "standardise"):
                data["training"][key] = getattr(self.training, key).value
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    def digest(self) -> bytes:
        return self._digest


def edges_to_bytes(edges: tuple[float, ...]) -> bytes:
    """Bin edges as little-endian float64 bytes (their wire and digest encoding)."""
    return np.asarray(edges, dtype="<f8").tobytes()


def _without_edges(spec: JobSpec) -> JobSpec:
    """A shallow copy of ``spec`` without its bin edges, for :func:`dataclasses.asdict` (no
    validation: only used to encode)."""
    if not spec.bin_edges:
        return spec
    copy = object.__new__(JobSpec)
    for name, value in spec.__dict__.items():
        object.__setattr__(copy, name, value)
    object.__setattr__(copy, "bin_edges", ())
    return copy


__all__ = [
    "BINNED_STATISTICS",
    "DP_STATISTICS",
    "FRAME_STATISTICS",
    "MAX_CONDITION_NODES",
    "MAX_GROUP_KEYS",
    "MAX_HISTOGRAM_BINS",
    "MAX_LR",
    "PROTOCOL_VERSION",
    "ClientAuth",
    "ColumnBound",
    "JobSpec",
    "Method",
    "Model",
    "NoiseMode",
    "Participant",
    "PrivacySpec",
    "Standardise",
    "Statistic",
    "TrainingSpec",
    "edges_to_bytes",
]

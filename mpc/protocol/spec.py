"""Job specs: what a job computes, over which data, with whom.

A :class:`JobSpec` is the one object every party checks before touching data. Its canonical
encoding (sorted-key JSON, shortest float repr) is hashed into the *spec digest*, which every
party signs together with its ephemeral key: parties that verify each other's signatures over
their own digest have thereby checked that the coordinator showed them all the same job.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np
from cryptography import x509

from mpc.errors import ProtocolError, QueryError
from mpc.identity import cert_name, check_party_id
from mpc.protocol.frame import COMPARISONS, MAX_CELLS, Condition, Frame, GroupKey, Op
from mpc.ring import MAX_FRAC_BITS
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


def check_bounds(column: str, lo: float, hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise QueryError(f"column {column!r}: bounds must be finite numbers")
    if lo > hi:
        raise QueryError(f"column {column!r}: lower bound {lo:g} is above upper bound {hi:g}")


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


def check_bin_edges(edges: tuple[float, ...]) -> None:
    """Histogram bin edges: at least 2, finite, strictly increasing, at most 2^20 bins."""
    if len(edges) < 2:
        raise QueryError("a histogram needs at least 2 bin edges")
    if len(edges) - 1 > MAX_HISTOGRAM_BINS:
        raise QueryError(f"a histogram has at most {MAX_HISTOGRAM_BINS} bins")
    array = np.asarray(edges, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise QueryError("histogram bin edges must be finite numbers")
    if not np.all(np.diff(array) > 0):
        raise QueryError("histogram bin edges must be strictly increasing")


def validate_spec(spec: JobSpec) -> None:
    """Raise :class:`QueryError` unless ``spec`` is well formed (pure structural checks)."""
    if spec.protocol_version != PROTOCOL_VERSION:
        raise QueryError(
            f"protocol version {spec.protocol_version} is not supported "
            f"(this build speaks {PROTOCOL_VERSION})"
        )
    if not JOB_ID_PATTERN.match(spec.job_id):
        raise QueryError("job id must be 1-64 characters of letters, digits, '_', '.' or '-'")
    if not isinstance(spec.statistic, Statistic):
        raise QueryError(f"unknown statistic {spec.statistic!r}")
    if not NAME_PATTERN.match(spec.dataset):
        raise QueryError(f"invalid dataset name {spec.dataset!r}")
    if not 0 <= spec.frac_bits <= MAX_FRAC_BITS:
        raise QueryError(f"frac_bits must be between 0 and {MAX_FRAC_BITS}")
    names = [c.column for c in spec.columns]
    if len(set(names)) != len(names):
        raise QueryError("a column is listed twice")
    for bound in spec.columns:
        check_bounds(bound.column, bound.lo, bound.hi)
    if spec.statistic in (Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE) and not spec.columns:
        raise QueryError(f"{spec.statistic.value} needs at least one column")
    if spec.statistic in BINNED_STATISTICS:
        what = spec.statistic.value
        if len(spec.columns) != 1:
            raise QueryError(f"{what} needs exactly one column")
        check_bin_edges(spec.bin_edges)
        bound = spec.columns[0]
        if (bound.lo, bound.hi) != (spec.bin_edges[0], spec.bin_edges[-1]):
            raise QueryError(f"a {what}'s column bounds must be its first and last bin edges")
    elif spec.bin_edges:
        raise QueryError("bin_edges are only for histogram and quantile")
    validate_frame(spec)
    if spec.statistic is Statistic.VECTOR_SUM:
        if len(spec.columns) != 1 or spec.vector_length < 1:
            raise QueryError("vector_sum needs exactly one bounds entry and a vector length")
    elif spec.vector_length:
        raise QueryError("vector_length is only for vector_sum")
    if spec.privacy is not None:
        validate_privacy(spec.privacy, spec.statistic, len(spec.participants))
    if (spec.statistic is Statistic.TRAIN) != (spec.training is not None):
        raise QueryError("a training spec goes with statistic 'train', and only with it")
    if spec.training is not None:
        validate_training(spec.training, names, spec.privacy)
    ids = [p.party_id for p in spec.participants]
    if len(ids) < 2:
        raise QueryError("a job needs at least two participating parties")
    if len(set(ids)) != len(ids):
        raise QueryError("a party is listed twice among the participants")
    if ids != sorted(ids):
        raise QueryError("participants must be listed in sorted order")
    for participant in spec.participants:
        check_party_id(participant.party_id)
        if participant.max_rows < 0:
            raise QueryError("max_rows must be non-negative")


def check_condition(condition: Condition) -> None:
    """A ``where`` condition: at most MAX_CONDITION_NODES nodes, finite constants, non-empty
    and duplicate-free category sets."""
    nodes = [condition]
    seen = 0
    while nodes:
        node = nodes.pop()
        seen += 1
        if seen > MAX_CONDITION_NODES:
            raise QueryError(f"a where condition has at most {MAX_CONDITION_NODES} parts")
        if node.op in (Op.AND, Op.OR):
            if not node.children:
                raise QueryError(f"an empty '{node.op.value}' in a where condition")
            nodes.extend(node.children)
            continue
        if not NAME_PATTERN.match(node.column):
            raise QueryError(f"invalid column name {node.column!r} in a where condition")
        if node.op is Op.IN:
            check_categories(node.column, node.categories)
        elif node.op not in COMPARISONS:
            raise QueryError(f"unknown operator {node.op.value!r} in a where condition")
        elif not math.isfinite(node.value):
            raise QueryError(f"column {node.column!r}: compare with a finite number")


def check_categories(column: str, categories: tuple[str, ...]) -> None:
    if not categories:
        raise QueryError(f"column {column!r}: list at least one category")
    if len(set(categories)) != len(categories):
        raise QueryError(f"column {column!r}: a category is listed twice")
    for category in categories:
        if not isinstance(category, str) or not 0 < len(category) <= 128:
            raise QueryError(f"column {column!r}: categories are 1-128 characters")


def validate_frame(spec: JobSpec) -> None:
    """``where``, ``group_by`` and ``quantiles``: only where the statistic takes them."""
    framed = spec.where is not None or spec.group_by
    if framed and spec.statistic not in FRAME_STATISTICS:
        raise QueryError(f"{spec.statistic.value} takes no where or group_by")
    if spec.where is not None:
        check_condition(spec.where)
    if len(spec.group_by) > MAX_GROUP_KEYS:
        raise QueryError(f"group by at most {MAX_GROUP_KEYS} columns")
    keys = [k.column for k in spec.group_by]
    if len(set(keys)) != len(keys):
        raise QueryError("a group_by column is listed twice")
    for key in spec.group_by:
        if not NAME_PATTERN.match(key.column):
            raise QueryError(f"invalid group_by column name {key.column!r}")
        if bool(key.categories) == bool(key.edges):
            raise QueryError(f"group_by column {key.column!r}: give categories or bin edges")
        if key.categories:
            check_categories(key.column, key.categories)
        else:
            check_bin_edges(key.edges)
    cells = spec.frame.cells * (len(spec.bin_edges) - 1 if spec.bin_edges else 1)
    if cells > MAX_CELLS:
        raise QueryError(f"a job has at most {MAX_CELLS} cells (groups times bins)")
    if spec.statistic is Statistic.CONTINGENCY and (len(spec.group_by) != 2 or spec.columns):
        raise QueryError("a contingency table groups by exactly two columns and reads no other")
    if spec.statistic is Statistic.TTEST and (
        len(spec.group_by) != 1 or spec.group_by[0].size != 2 or not spec.columns
    ):
        raise QueryError("a t-test needs columns and one group_by key with exactly 2 groups")
    if spec.statistic in (Statistic.COVARIANCE, Statistic.CORRELATION) and len(spec.columns) < 2:
        raise QueryError(f"{spec.statistic.value} needs at least two columns")
    if spec.statistic is Statistic.QUANTILE:
        if not spec.quantiles:
            raise QueryError("quantile needs at least one probability")
        if not all(0 < q < 1 for q in spec.quantiles):
            raise QueryError("quantile probabilities must be between 0 and 1 (exclusive)")
    elif spec.quantiles:
        raise QueryError("quantiles are only for the quantile statistic")


def validate_privacy(privacy: PrivacySpec, statistic: Statistic, parties: int) -> None:
    """Refuse privacy parameters that cannot be honoured, before anyone touches data."""
    if not isinstance(privacy.noise, NoiseMode) or privacy.noise is NoiseMode.NONE:
        raise QueryError("a privacy spec needs noise 'central' or 'distributed'")
    if not (math.isfinite(privacy.epsilon) and privacy.epsilon > 0):
        raise QueryError("epsilon must be a positive finite number")
    if not (math.isfinite(privacy.delta) and 0 <= privacy.delta < 1):
        raise QueryError("delta must be in [0, 1)")
    if statistic not in DP_STATISTICS:
        raise QueryError(
            f"{statistic.value} has no record-level sensitivity: differential privacy is "
            f"available for {', '.join(sorted(s.value for s in DP_STATISTICS))}"
        )
    if privacy.noise is NoiseMode.DISTRIBUTED:
        if privacy.delta == 0:
            raise QueryError(
                "distributed noise uses the discrete Gaussian and needs delta > 0 "
                "(pure epsilon-DP is available with --noise central)"
            )
        if not 0 <= privacy.colluders < parties:
            raise QueryError(
                f"colluders must be between 0 and {parties - 1} for {parties} parties "
                "(distributed noise needs at least one honest party)"
            )


def validate_training(
    training: TrainingSpec, columns: list[str], privacy: PrivacySpec | None
) -> None:
    """Refuse training parameters that cannot be honoured (structural checks only)."""
    if not isinstance(training.model, Model):
        raise QueryError(f"unknown model {training.model!r} (linear or logistic)")
    if not isinstance(training.method, Method):
        raise QueryError(f"unknown method {training.method!r} (gd, newton or closed_form)")
    if not isinstance(training.standardise, Standardise):
        raise QueryError(f"unknown standardisation {training.standardise!r}")
    if len(columns) < 2 or columns[-1] != training.label:
        raise QueryError("a training job needs feature columns followed by its label column")
    if training.label in columns[:-1]:
        raise QueryError(f"the label {training.label!r} is also listed as a feature")
    if not 1 <= training.rounds <= 100_000:
        raise QueryError("rounds must be between 1 and 100000")
    if not 0 <= training.start_round <= 1_000_000:
        raise QueryError("start_round must be between 0 and 1000000")
    numbers = {
        "lr": training.lr,
        "l2": training.l2,
        "clip": training.clip,
        "batch_rate": training.batch_rate,
        "tol": training.tol,
        "holdout": training.holdout,
    }
    for name, value in numbers.items():
        if not (math.isfinite(value) and value >= 0):
            raise QueryError(f"{name} must be a non-negative finite number")
    if not 0 <= training.lr <= MAX_LR:
        raise QueryError(f"lr must be at most {MAX_LR:g} (0: an automatic, safe step)")
    if training.batch_rate > 1:
        raise QueryError("batch_rate must be in (0, 1] (0: every row every round)")
    if training.holdout >= 1:
        raise QueryError("holdout must be in [0, 1)")
    if training.method is Method.CLOSED_FORM and training.model is not Model.LINEAR:
        raise QueryError("the closed form is for linear regression only")
    if training.method is Method.CLOSED_FORM and training.batch_rate:
        raise QueryError("the closed form uses every row: drop batch_rate")
    if privacy is not None:
        if training.method is not Method.GD:
            raise QueryError("differentially private training uses gradient descent (method gd)")
        if training.standardise is Standardise.SECURE:
            raise QueryError(
                "differentially private training cannot standardise with secure moments "
                "(they would be released without noise): use standardise 'bounds'"
            )
        if training.clip <= 0:
            raise QueryError("differentially private training needs a clip norm (--clip)")


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
    "check_bin_edges",
    "check_bounds",
    "check_categories",
    "check_condition",
    "edges_to_bytes",
    "validate_frame",
    "validate_privacy",
    "validate_spec",
    "validate_training",
]

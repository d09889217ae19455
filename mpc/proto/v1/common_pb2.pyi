from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ColumnBounds(_message.Message):
    __slots__ = ("column", "lo", "hi")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    column: str
    lo: float
    hi: float
    def __init__(self, column: _Optional[str] = ..., lo: _Optional[float] = ..., hi: _Optional[float] = ...) -> None: ...

class Participant(_message.Message):
    __slots__ = ("party_id", "max_rows")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    max_rows: int
    def __init__(self, party_id: _Optional[str] = ..., max_rows: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("job_id", "statistic", "dataset", "columns", "frac_bits", "participants", "vector_length", "protocol_version", "privacy", "training", "bin_edges", "client", "where_json", "group_by_json", "quantiles")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    BIN_EDGES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    WHERE_JSON_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_JSON_FIELD_NUMBER: _ClassVar[int]
    QUANTILES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    statistic: str
    dataset: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnBounds]
    frac_bits: int
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    vector_length: int
    protocol_version: int
    privacy: PrivacySpec
    training: TrainingSpec
    bin_edges: bytes
    client: ClientAuth
    where_json: str
    group_by_json: str
    quantiles: bytes
    def __init__(self, job_id: _Optional[str] = ..., statistic: _Optional[str] = ..., dataset: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnBounds, _Mapping]]] = ..., frac_bits: _Optional[int] = ..., participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., vector_length: _Optional[int] = ..., protocol_version: _Optional[int] = ..., privacy: _Optional[_Union[PrivacySpec, _Mapping]] = ..., training: _Optional[_Union[TrainingSpec, _Mapping]] = ..., bin_edges: _Optional[bytes] = ..., client: _Optional[_Union[ClientAuth, _Mapping]] = ..., where_json: _Optional[str] = ..., group_by_json: _Optional[str] = ..., quantiles: _Optional[bytes] = ...) -> None: ...

class ClientAuth(_message.Message):
    __slots__ = ("query", "nonce", "timestamp_ms", "signature", "certificate_pem")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    query: bytes
    nonce: bytes
    timestamp_ms: int
    signature: bytes
    certificate_pem: bytes
    def __init__(self, query: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., certificate_pem: _Optional[bytes] = ...) -> None: ...

class TrainingSpec(_message.Message):
    __slots__ = ("model", "label", "rounds", "lr", "l2", "clip", "batch_rate", "method", "tol", "holdout", "standardise", "start_round")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    L2_FIELD_NUMBER: _ClassVar[int]
    CLIP_FIELD_NUMBER: _ClassVar[int]
    BATCH_RATE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TOL_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    STANDARDISE_FIELD_NUMBER: _ClassVar[int]
    START_ROUND_FIELD_NUMBER: _ClassVar[int]
    model: str
    label: str
    rounds: int
    lr: float
    l2: float
    clip: float
    batch_rate: float
    method: str
    tol: float
    holdout: float
    standardise: str
    start_round: int
    def __init__(self, model: _Optional[str] = ..., label: _Optional[str] = ..., rounds: _Optional[int] = ..., lr: _Optional[float] = ..., l2: _Optional[float] = ..., clip: _Optional[float] = ..., batch_rate: _Optional[float] = ..., method: _Optional[str] = ..., tol: _Optional[float] = ..., holdout: _Optional[float] = ..., standardise: _Optional[str] = ..., start_round: _Optional[int] = ...) -> None: ...

class PrivacySpec(_message.Message):
    __slots__ = ("noise", "epsilon", "delta", "colluders")
    NOISE_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    COLLUDERS_FIELD_NUMBER: _ClassVar[int]
    noise: str
    epsilon: float
    delta: float
    colluders: int
    def __init__(self, noise: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., colluders: _Optional[int] = ...) -> None: ...

class BudgetStatus(_message.Message):
    __slots__ = ("dataset", "charges", "spent_rho", "spent_epsilon", "has_budget", "budget_epsilon", "budget_delta", "remaining_epsilon")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    SPENT_RHO_FIELD_NUMBER: _ClassVar[int]
    SPENT_EPSILON_FIELD_NUMBER: _ClassVar[int]
    HAS_BUDGET_FIELD_NUMBER: _ClassVar[int]
    BUDGET_EPSILON_FIELD_NUMBER: _ClassVar[int]
    BUDGET_DELTA_FIELD_NUMBER: _ClassVar[int]
    REMAINING_EPSILON_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    charges: int
    spent_rho: float
    spent_epsilon: float
    has_budget: bool
    budget_epsilon: float
    budget_delta: float
    remaining_epsilon: float
    def __init__(self, dataset: _Optional[str] = ..., charges: _Optional[int] = ..., spent_rho: _Optional[float] = ..., spent_epsilon: _Optional[float] = ..., has_budget: _Optional[bool] = ..., budget_epsilon: _Optional[float] = ..., budget_delta: _Optional[float] = ..., remaining_epsilon: _Optional[float] = ...) -> None: ...

class VectorChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ColumnSchema(_message.Message):
    __slots__ = ("name", "has_bounds", "lo", "hi", "description", "available", "categories")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HAS_BOUNDS_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    has_bounds: bool
    lo: float
    hi: float
    description: str
    available: bool
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., has_bounds: _Optional[bool] = ..., lo: _Optional[float] = ..., hi: _Optional[float] = ..., description: _Optional[str] = ..., available: _Optional[bool] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class DatasetSchema(_message.Message):
    __slots__ = ("name", "kind", "columns", "max_rows", "vector_length", "description", "available", "participation", "cohort", "min_parties", "max_bins", "exact_filters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPATION_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    MIN_PARTIES_FIELD_NUMBER: _ClassVar[int]
    MAX_BINS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FILTERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    max_rows: int
    vector_length: int
    description: str
    available: bool
    participation: str
    cohort: _containers.RepeatedScalarFieldContainer[str]
    min_parties: int
    max_bins: int
    exact_filters: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., max_rows: _Optional[int] = ..., vector_length: _Optional[int] = ..., description: _Optional[str] = ..., available: _Optional[bool] = ..., participation: _Optional[str] = ..., cohort: _Optional[_Iterable[str]] = ..., min_parties: _Optional[int] = ..., max_bins: _Optional[int] = ..., exact_filters: _Optional[bool] = ...) -> None: ...

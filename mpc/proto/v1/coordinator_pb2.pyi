from mpc.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState

class Query(_message.Message):
    __slots__ = ("statistic", "dataset", "columns", "bounds", "frac_bits", "parties", "noise", "epsilon", "delta", "training", "resume_from", "bin_edges", "where_json", "group_by_json", "quantiles")
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    RESUME_FROM_FIELD_NUMBER: _ClassVar[int]
    BIN_EDGES_FIELD_NUMBER: _ClassVar[int]
    WHERE_JSON_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_JSON_FIELD_NUMBER: _ClassVar[int]
    QUANTILES_FIELD_NUMBER: _ClassVar[int]
    statistic: str
    dataset: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    bounds: _containers.RepeatedCompositeFieldContainer[_common_pb2.ColumnBounds]
    frac_bits: int
    parties: _containers.RepeatedScalarFieldContainer[str]
    noise: str
    epsilon: float
    delta: float
    training: _common_pb2.TrainingSpec
    resume_from: str
    bin_edges: bytes
    where_json: str
    group_by_json: str
    quantiles: bytes
    def __init__(self, statistic: _Optional[str] = ..., dataset: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., bounds: _Optional[_Iterable[_Union[_common_pb2.ColumnBounds, _Mapping]]] = ..., frac_bits: _Optional[int] = ..., parties: _Optional[_Iterable[str]] = ..., noise: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., training: _Optional[_Union[_common_pb2.TrainingSpec, _Mapping]] = ..., resume_from: _Optional[str] = ..., bin_edges: _Optional[bytes] = ..., where_json: _Optional[str] = ..., group_by_json: _Optional[str] = ..., quantiles: _Optional[bytes] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("query", "signed")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    query: Query
    signed: _common_pb2.ClientAuth
    def __init__(self, query: _Optional[_Union[Query, _Mapping]] = ..., signed: _Optional[_Union[_common_pb2.ClientAuth, _Mapping]] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "state", "stage", "message", "progress", "result", "values")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    stage: str
    message: str
    progress: float
    result: ResultHeader
    values: bytes
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., stage: _Optional[str] = ..., message: _Optional[str] = ..., progress: _Optional[float] = ..., result: _Optional[_Union[ResultHeader, _Mapping]] = ..., values: _Optional[bytes] = ...) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ResultHeader(_message.Message):
    __slots__ = ("job_id", "state", "statistic", "dataset", "labels", "parties", "length", "frac_bits", "tolerance", "error", "bounds", "created_at", "finished_at", "privacy", "model_json", "tolerances")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    MODEL_JSON_FIELD_NUMBER: _ClassVar[int]
    TOLERANCES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    statistic: str
    dataset: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    parties: _containers.RepeatedScalarFieldContainer[str]
    length: int
    frac_bits: int
    tolerance: float
    error: str
    bounds: _containers.RepeatedCompositeFieldContainer[_common_pb2.ColumnBounds]
    created_at: float
    finished_at: float
    privacy: Privacy
    model_json: str
    tolerances: _containers.RepeatedCompositeFieldContainer[LabelTolerance]
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., statistic: _Optional[str] = ..., dataset: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., parties: _Optional[_Iterable[str]] = ..., length: _Optional[int] = ..., frac_bits: _Optional[int] = ..., tolerance: _Optional[float] = ..., error: _Optional[str] = ..., bounds: _Optional[_Iterable[_Union[_common_pb2.ColumnBounds, _Mapping]]] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., privacy: _Optional[_Union[Privacy, _Mapping]] = ..., model_json: _Optional[str] = ..., tolerances: _Optional[_Iterable[_Union[LabelTolerance, _Mapping]]] = ...) -> None: ...

class LabelTolerance(_message.Message):
    __slots__ = ("label", "tolerance")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    label: str
    tolerance: float
    def __init__(self, label: _Optional[str] = ..., tolerance: _Optional[float] = ...) -> None: ...

class Privacy(_message.Message):
    __slots__ = ("noise", "epsilon", "delta", "epsilon_spent", "rho_spent", "values")
    NOISE_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_FIELD_NUMBER: _ClassVar[int]
    RHO_SPENT_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    noise: str
    epsilon: float
    delta: float
    epsilon_spent: float
    rho_spent: float
    values: _containers.RepeatedCompositeFieldContainer[NoiseInfo]
    def __init__(self, noise: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., epsilon_spent: _Optional[float] = ..., rho_spent: _Optional[float] = ..., values: _Optional[_Iterable[_Union[NoiseInfo, _Mapping]]] = ...) -> None: ...

class NoiseInfo(_message.Message):
    __slots__ = ("label", "sigma", "error_bound_95", "error_kind")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    ERROR_BOUND_95_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    label: str
    sigma: float
    error_bound_95: float
    error_kind: str
    def __init__(self, label: _Optional[str] = ..., sigma: _Optional[float] = ..., error_bound_95: _Optional[float] = ..., error_kind: _Optional[str] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("header", "values")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    header: ResultHeader
    values: _common_pb2.VectorChunk
    def __init__(self, header: _Optional[_Union[ResultHeader, _Mapping]] = ..., values: _Optional[_Union[_common_pb2.VectorChunk, _Mapping]] = ...) -> None: ...

class ListPartiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PartyInfo(_message.Message):
    __slots__ = ("party_id", "address", "reachable", "error", "datasets")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    address: str
    reachable: bool
    error: str
    datasets: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetSchema]
    def __init__(self, party_id: _Optional[str] = ..., address: _Optional[str] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[_common_pb2.DatasetSchema, _Mapping]]] = ...) -> None: ...

class ListPartiesResponse(_message.Message):
    __slots__ = ("parties",)
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    parties: _containers.RepeatedCompositeFieldContainer[PartyInfo]
    def __init__(self, parties: _Optional[_Iterable[_Union[PartyInfo, _Mapping]]] = ...) -> None: ...

class GetBudgetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PartyBudgets(_message.Message):
    __slots__ = ("party_id", "reachable", "error", "budgets")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    reachable: bool
    error: str
    budgets: _containers.RepeatedCompositeFieldContainer[_common_pb2.BudgetStatus]
    def __init__(self, party_id: _Optional[str] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., budgets: _Optional[_Iterable[_Union[_common_pb2.BudgetStatus, _Mapping]]] = ...) -> None: ...

class GetBudgetsResponse(_message.Message):
    __slots__ = ("coordinator", "parties")
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    coordinator: _containers.RepeatedCompositeFieldContainer[_common_pb2.BudgetStatus]
    parties: _containers.RepeatedCompositeFieldContainer[PartyBudgets]
    def __init__(self, coordinator: _Optional[_Iterable[_Union[_common_pb2.BudgetStatus, _Mapping]]] = ..., parties: _Optional[_Iterable[_Union[PartyBudgets, _Mapping]]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "all_clients")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ALL_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    all_clients: bool
    def __init__(self, limit: _Optional[int] = ..., all_clients: _Optional[bool] = ...) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("job_id", "state", "statistic", "dataset", "submitted_by", "created_at", "finished_at", "epsilon_spent", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    statistic: str
    dataset: str
    submitted_by: str
    created_at: float
    finished_at: float
    epsilon_spent: float
    error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., statistic: _Optional[str] = ..., dataset: _Optional[str] = ..., submitted_by: _Optional[str] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., epsilon_spent: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobSummary]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobSummary, _Mapping]]] = ...) -> None: ...

from mpc.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetLedgerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLedgerResponse(_message.Message):
    __slots__ = ("budgets",)
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[_common_pb2.BudgetStatus]
    def __init__(self, budgets: _Optional[_Iterable[_Union[_common_pb2.BudgetStatus, _Mapping]]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("party_id", "datasets", "epoch_key")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_KEY_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    datasets: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetSchema]
    epoch_key: SignedEpochKey
    def __init__(self, party_id: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[_common_pb2.DatasetSchema, _Mapping]]] = ..., epoch_key: _Optional[_Union[SignedEpochKey, _Mapping]] = ...) -> None: ...

class SignedEpochKey(_message.Message):
    __slots__ = ("party_id", "epoch_id", "public_key", "not_after", "signature", "certificate_pem")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    epoch_id: bytes
    public_key: bytes
    not_after: int
    signature: bytes
    certificate_pem: bytes
    def __init__(self, party_id: _Optional[str] = ..., epoch_id: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., not_after: _Optional[int] = ..., signature: _Optional[bytes] = ..., certificate_pem: _Optional[bytes] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("spec", "keys")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.JobSpec
    keys: _containers.RepeatedCompositeFieldContainer[SignedEpochKey]
    def __init__(self, spec: _Optional[_Union[_common_pb2.JobSpec, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[SignedEpochKey, _Mapping]]] = ...) -> None: ...

class SetupRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.JobSpec
    def __init__(self, spec: _Optional[_Union[_common_pb2.JobSpec, _Mapping]] = ...) -> None: ...

class SignedKey(_message.Message):
    __slots__ = ("party_id", "public_key", "signature", "certificate_pem")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    public_key: bytes
    signature: bytes
    certificate_pem: bytes
    def __init__(self, party_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., certificate_pem: _Optional[bytes] = ...) -> None: ...

class SetupResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: SignedKey
    def __init__(self, key: _Optional[_Union[SignedKey, _Mapping]] = ...) -> None: ...

class AgreeKeysRequest(_message.Message):
    __slots__ = ("job_id", "keys")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    keys: _containers.RepeatedCompositeFieldContainer[SignedKey]
    def __init__(self, job_id: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[SignedKey, _Mapping]]] = ...) -> None: ...

class AgreeKeysResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ContributeRequest(_message.Message):
    __slots__ = ("job_id", "round", "round_input")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUND_INPUT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    round: int
    round_input: bytes
    def __init__(self, job_id: _Optional[str] = ..., round: _Optional[int] = ..., round_input: _Optional[bytes] = ...) -> None: ...

class ShareChunk(_message.Message):
    __slots__ = ("job_id", "round", "party_id", "total_length", "chunk")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    round: int
    party_id: str
    total_length: int
    chunk: _common_pb2.VectorChunk
    def __init__(self, job_id: _Optional[str] = ..., round: _Optional[int] = ..., party_id: _Optional[str] = ..., total_length: _Optional[int] = ..., chunk: _Optional[_Union[_common_pb2.VectorChunk, _Mapping]] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

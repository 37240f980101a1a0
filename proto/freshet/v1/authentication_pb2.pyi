from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AuthenticateRequest(_message.Message):
    __slots__ = ("mechanism", "exchange_id", "message")
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    mechanism: str
    exchange_id: str
    message: bytes
    def __init__(self, mechanism: _Optional[str] = ..., exchange_id: _Optional[str] = ..., message: _Optional[bytes] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("exchange_id", "message", "is_complete", "token", "session_lifetime_ms", "principal")
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_LIFETIME_MS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    exchange_id: str
    message: bytes
    is_complete: bool
    token: str
    session_lifetime_ms: int
    principal: str
    def __init__(self, exchange_id: _Optional[str] = ..., message: _Optional[bytes] = ..., is_complete: _Optional[bool] = ..., token: _Optional[str] = ..., session_lifetime_ms: _Optional[int] = ..., principal: _Optional[str] = ...) -> None: ...

"""The Kafka APIs a broker serves: one table of handlers, the dispatcher, and ApiVersions.

Owns the registry (API key -> handler and the [min, max] versions it implements), which is also
exactly what ApiVersions advertises (KIP-35/KIP-511: a client picks the highest version both
sides have); the dispatch of a decoded request to its handler, timing it per API in the broker's
request metrics (`Kafka<Name>`); and the ApiVersions answers, including UNSUPPORTED_VERSION with
the supported ranges for an ApiVersions version the broker cannot read.

A handler is an object with `api_key`, `name`, `versions` and `handle(request)`, which returns
the response body, an awaitable of it (a handler with `has_file_regions` may put FileRegions in
its records fields; its response is then encoded as `codec.ResponseParts`, which the listener
writes with sendfile), `NO_RESPONSE` (acks=0 produce), or `CLOSE_CONNECTION`
(an acks=0 produce that failed: Kafka closes the connection so that the client, which gets no
answer, refreshes its metadata).

Refused APIs (`refuse`): APIs the broker does not implement (transactions) but answers anyway,
at once, with a well-formed response carrying a non-retriable error, so that a client that sends
one without asking ApiVersions first gets an error instead of a closed connection or a hang. They
are dispatched like served APIs but never advertised by ApiVersions, so clients that do ask (the
Java client, librdkafka) refuse the feature themselves before sending anything. `handle` runs
synchronously up to its first await, in request order (server/kafka/listener.py), so appends of
one connection happen in the order the client sent them.

Imports: asyncio, kio (through codec), freshet.server (kafka, metrics). Thread-safety: not
thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterable
from typing import Any, Protocol

from freshet.server.kafka import codec
from freshet.server.metrics import BrokerMetrics

#: A handler's answer when the request gets no response (acks=0 produce).
NO_RESPONSE = object()
#: A handler's answer when the connection must close without a response (a failed acks=0 produce).
CLOSE_CONNECTION = object()
UNSUPPORTED_VERSION = 35


class ApiHandler(Protocol):
    api_key: int
    name: str
    versions: tuple[int, int]                   # [min, max] implemented and advertised

    def handle(self, request: codec.Request) -> Any:
        """The response body, an awaitable of it, or NO_RESPONSE."""
        ...


class ApiVersionsHandler:
    """ApiVersions (key 18): every API of the table with its version range."""

    api_key = codec.API_VERSIONS_KEY
    name = "ApiVersions"
    versions = (0, 3)

    def __init__(self, apis: KafkaApis) -> None:
        self._apis = apis

    def handle(self, request: codec.Request) -> Any:
        return self.body(request.api_version, 0)

    def body(self, api_version: int, error_code: int) -> Any:
        schema = codec.response_schema(self.api_key, api_version)
        entry = codec.nested(schema, "ApiVersion")
        keys = tuple(
            codec.build(entry, api_key=handler.api_key, min_version=handler.versions[0], max_version=handler.versions[1])
            for handler in self._apis.handlers()
        )
        return codec.build(schema, error_code=error_code, api_keys=keys, throttle_time=0)


class KafkaApis:
    """The dispatcher the listener calls (module docstring). Not thread-safe (loop)."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics
        self._handlers: dict[int, ApiHandler] = {}
        self._refused: dict[int, ApiHandler] = {}
        self.add(ApiVersionsHandler(self))

    def add(self, handler: ApiHandler) -> None:
        """Serve `handler`'s API at its versions (each version must have a kio schema)."""
        low, high = handler.versions
        assert 0 <= low <= high, handler
        assert handler.api_key not in self._handlers and handler.api_key not in self._refused, handler
        for version in range(low, high + 1):
            codec.response_schema(handler.api_key, version)      # raises for a version kio lacks
        self._handlers[handler.api_key] = handler

    def refuse(self, handler: ApiHandler) -> None:
        """Answer `handler`'s API at its versions without advertising it (module docstring): its
        `handle` must answer at once with a non-retriable error."""
        low, high = handler.versions
        assert 0 <= low <= high, handler
        assert handler.api_key not in self._handlers and handler.api_key not in self._refused, handler
        for version in range(low, high + 1):
            codec.response_schema(handler.api_key, version)
        self._refused[handler.api_key] = handler

    def handlers(self) -> Iterable[ApiHandler]:
        """The advertised handlers (refused APIs are not among them), by API key."""
        return [self._handlers[key] for key in sorted(self._handlers)]

    def supports(self, api_key: int, api_version: int) -> bool:
        handler = self._handlers.get(api_key) or self._refused.get(api_key)
        return handler is not None and handler.versions[0] <= api_version <= handler.versions[1]

    def unsupported_api_versions(self, request: codec.UnsupportedRequestError) -> bytes:
        """ApiVersions v0 with UNSUPPORTED_VERSION and the ranges (KIP-511's fallback answer)."""
        handler = self._handlers[codec.API_VERSIONS_KEY]
        assert isinstance(handler, ApiVersionsHandler)
        body = handler.body(0, UNSUPPORTED_VERSION)
        return codec.encode_response(codec.API_VERSIONS_KEY, 0, request.correlation_id, body)

    def dispatch(self, request: codec.Request, peer: str):
        """What the listener queues: an awaitable of the response frame, None (no response), or
        False (close the connection)."""
        handler = self._handlers.get(request.api_key) or self._refused[request.api_key]
        started = time.monotonic()
        answer = handler.handle(request)
        if answer is NO_RESPONSE or answer is CLOSE_CONNECTION:
            self._metrics.observe_request(f"Kafka{handler.name}", time.monotonic() - started)
            return None if answer is NO_RESPONSE else False
        return asyncio.get_running_loop().create_task(self._respond(handler, request, answer, started))

    async def _respond(
        self, handler: ApiHandler, request: codec.Request, answer: Any, started: float
    ) -> bytes | codec.ResponseParts | None:
        try:
            body = await answer if inspect.isawaitable(answer) else answer
            if body is NO_RESPONSE:
                return None
            if getattr(handler, "has_file_regions", False):
                return codec.encode_response_parts(request.api_key, request.api_version, request.correlation_id, body)
            return codec.encode_response(request.api_key, request.api_version, request.correlation_id, body)
        finally:
            self._metrics.observe_request(f"Kafka{handler.name}", time.monotonic() - started)

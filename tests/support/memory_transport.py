"""An in-memory gRPC network for the client SDK tests: servicers and clients without sockets.

Not a test module (no test_ prefix); imported by the client tests.

`InMemoryNetwork` stands in for gRPC's transport below the generated stubs. Servicers are mounted
with the generated `add_XServicer_to_server(servicer, network.add_server(address))` (an
`InMemoryServer` records the method handlers), and `network.transport(bootstrap)` is a real
`freshet.client._transport.Transport` whose channel factory returns `InMemoryChannel`s, so the
clients run unchanged: `Producer(transport=network.transport("a:1"))`.

What it keeps of gRPC's behaviour, because the clients depend on it:

- requests and responses are serialized and parsed on the way (a message the wire could not carry
  fails here too);
- a servicer's `context.abort(...)` / `abort_with_status(...)` reaches the client as a
  `grpc.RpcError` with code, details and trailing metadata (so `grpc_status` details work);
- an address with no server, or one removed meanwhile, answers UNAVAILABLE; a timeout ends a call
  with DEADLINE_EXCEEDED; cancelling a call or closing the channel ends it with CANCELLED and makes
  the servicer's `context.is_active()` false;
- `future()` calls, unary-stream and stream-stream calls run the servicer on a worker thread, as a
  gRPC server does; calling a closed channel raises ValueError, as gRPC does.

Thread-safety: thread-safe (one lock per network, per call).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
from freshet.client._transport import Transport


class _Abort(Exception):
    """Raised inside a servicer by context.abort()."""


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class InMemoryServer:
    """The `grpc.Server` surface the generated add_*Servicer_to_server functions use."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._generic: list = []

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict) -> None:
        for name, handler in method_handlers.items():
            self._handlers[f"/{service_name}/{name}"] = handler

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._generic.extend(handlers)

    def handler(self, method: str) -> grpc.RpcMethodHandler | None:
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(_Details(method))
            if handler is not None:
                return handler
        return None


class InMemoryRpcError(grpc.RpcError, grpc.Call):
    """A failed call as the client sees it: code, details, trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details
        self._trailing_metadata = tuple(trailing_metadata or ())

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing_metadata

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


class _Context:
    """The servicer side of one call (grpc.ServicerContext's surface the fakes use)."""

    def __init__(self, timeout: float | None) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._lock = threading.Lock()
        self._is_active = True
        self._callbacks: list[Callable[[], None]] = []
        self.code_set: grpc.StatusCode | None = None
        self.details_set = ""
        self.trailing_metadata_set: tuple = ()

    def end(self) -> None:
        with self._lock:
            if not self._is_active:
                return
            self._is_active = False
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def is_active(self) -> bool:
        return self._is_active and (self._deadline is None or time.monotonic() < self._deadline)

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(self._deadline - time.monotonic(), 0.0)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if not self._is_active:
                return False
            self._callbacks.append(callback)
            return True

    def cancel(self) -> None:
        self.end()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code_set, self.details_set = code, details
        raise _Abort()

    def abort_with_status(self, status) -> None:
        self.trailing_metadata_set = tuple(status.trailing_metadata or ())
        self.abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code_set = code

    def set_details(self, details: str) -> None:
        self.details_set = details

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing_metadata_set = tuple(metadata)

    def invocation_metadata(self):
        return ()

    def send_initial_metadata(self, metadata) -> None:
        pass

    def peer(self) -> str:
        return "in-memory"

    def error(self) -> InMemoryRpcError | None:
        if self.code_set is None or self.code_set == grpc.StatusCode.OK:
            return None
        return InMemoryRpcError(self.code_set, self.details_set, self.trailing_metadata_set)


class _Call:
    """One client call: a grpc.Future for unary calls, an iterator for streaming ones."""

    def __init__(self, network: InMemoryNetwork, timeout: float | None, deserialize) -> None:
        self._network = network
        self._deserialize = deserialize
        self.context = _Context(timeout)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._callbacks: list = []
        self._response = None
        self._error: InMemoryRpcError | None = None
        self._is_cancelled = False
        self._stream: queue.SimpleQueue = queue.SimpleQueue()
        self._timer = threading.Timer(timeout, self._expire) if timeout is not None else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    # ---- completion ------------------------------------------------------------------------------

    def _finish(self, response=None, error: InMemoryRpcError | None = None, is_cancelled: bool = False) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self._response, self._error, self._is_cancelled = response, error, is_cancelled
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        if self._timer is not None:
            self._timer.cancel()
        self._stream.put(_END)
        self.context.end()
        self._network.untrack(self)
        for callback in callbacks:
            callback(self)
        return True

    def _expire(self) -> None:
        self._finish(error=InMemoryRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    def fail(self, code: grpc.StatusCode, details: str) -> None:
        self._finish(error=InMemoryRpcError(code, details))

    def run_unary(self, behaviour, request) -> None:
        try:
            response = behaviour(request, self.context)
        except _Abort:
            self._finish(error=self.context.error())
            return
        except Exception as error:  # a servicer bug: gRPC answers UNKNOWN
            self._finish(error=InMemoryRpcError(grpc.StatusCode.UNKNOWN, f"Exception calling application: {error}"))
            return
        error = self.context.error()
        if error is not None:
            self._finish(error=error)
        else:
            self._finish(response=self._deserialize(type(response).SerializeToString(response)))

    def run_stream(self, behaviour, request) -> None:
        try:
            for response in behaviour(request, self.context):
                if self._done.is_set():
                    return
                self._stream.put(self._deserialize(type(response).SerializeToString(response)))
        except _Abort:
            self._finish(error=self.context.error())
            return
        except Exception as error:
            if not self._done.is_set():
                self._finish(error=InMemoryRpcError(grpc.StatusCode.UNKNOWN, f"Exception iterating responses: {error}"))
            return
        self._finish(error=self.context.error())

    # ---- grpc.Future -----------------------------------------------------------------------------

    def cancel(self) -> bool:
        return self._finish(error=InMemoryRpcError(grpc.StatusCode.CANCELLED, "Locally cancelled"), is_cancelled=True)

    def cancelled(self) -> bool:
        return self._is_cancelled

    def running(self) -> bool:
        return not self._done.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None):
        if not self._done.wait(timeout):
            raise grpc.FutureTimeoutError()
        if self._is_cancelled:
            raise grpc.FutureCancelledError()
        if self._error is not None:
            raise self._error
        return self._response

    def exception(self, timeout: float | None = None):
        if not self._done.wait(timeout):
            raise grpc.FutureTimeoutError()
        if self._is_cancelled:
            raise grpc.FutureCancelledError()
        return self._error

    def traceback(self, timeout: float | None = None):
        return None

    def add_done_callback(self, callback) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    # ---- grpc.Call and response iteration ----------------------------------------------------------

    def is_active(self) -> bool:
        return not self._done.is_set()

    def code(self):
        return self._error.code() if self._error is not None else grpc.StatusCode.OK

    def details(self):
        return self._error.details() if self._error is not None else ""

    def trailing_metadata(self):
        return self._error.trailing_metadata() if self._error is not None else ()

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        item = self._stream.get()
        if item is _END:
            self._stream.put(_END)  # later next() calls end too
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item


_END = object()


class _MultiCallable:
    """What `channel.unary_unary(...)` and friends return."""

    def __init__(self, channel: InMemoryChannel, method: str, kind: str, serialize, deserialize) -> None:
        self._channel = channel
        self._method = method
        self._kind = kind
        self._serialize = serialize
        self._deserialize = deserialize

    def _start(self, request, timeout: float | None) -> _Call:
        channel = self._channel
        if channel.is_closed:
            raise ValueError("Cannot invoke RPC on closed channel!")
        call = _Call(channel.network, timeout, self._deserialize)
        channel.network.track(channel.address, call)
        server = channel.network.server(channel.address)
        handler = server.handler(self._method) if server is not None else None
        if server is None:
            call.fail(grpc.StatusCode.UNAVAILABLE, f"failed to connect to all addresses; last error: {channel.address}")
            return call
        if handler is None:
            call.fail(grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {self._method}")
            return call
        channel.track(call)
        if self._kind.startswith("stream"):
            parse = handler.request_deserializer
            requests = (parse(self._serialize(item)) for item in _until_inactive(request, call.context))
        else:
            requests = handler.request_deserializer(self._serialize(request))
        behaviour = getattr(handler, self._kind)
        run = call.run_stream if self._kind.endswith("stream") else call.run_unary
        channel.network.submit(run, behaviour, requests)
        return call

    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None, compression=None):
        call = self._start(request, timeout)
        if self._kind.endswith("stream"):
            return call
        return call.result()

    def future(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None, compression=None):
        return self._start(request, timeout)

    def with_call(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None, compression=None):
        call = self._start(request, timeout)
        return call.result(), call


def _until_inactive(requests, context: _Context):
    for request in requests:
        if not context.is_active():
            return
        yield request


class InMemoryChannel(grpc.Channel):
    """A channel to one address of an InMemoryNetwork."""

    def __init__(self, network: InMemoryNetwork, address: str) -> None:
        self.network = network
        self.address = address
        self.is_closed = False
        self._lock = threading.Lock()
        self._calls: set[_Call] = set()

    def track(self, call: _Call) -> None:
        with self._lock:
            self._calls.add(call)
        call.add_done_callback(self._untrack)

    def _untrack(self, call: _Call) -> None:
        with self._lock:
            self._calls.discard(call)

    def _multi(self, kind: str, method, request_serializer=None, response_deserializer=None, **_ignored):
        serialize = request_serializer or (lambda message: message)
        deserialize = response_deserializer or (lambda data: data)
        return _MultiCallable(self, method, kind, serialize, deserialize)

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return self._multi("unary_unary", method, request_serializer, response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return self._multi("unary_stream", method, request_serializer, response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return self._multi("stream_unary", method, request_serializer, response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return self._multi("stream_stream", method, request_serializer, response_deserializer)

    def subscribe(self, callback, try_to_connect=False) -> None:
        pass

    def unsubscribe(self, callback) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            self.is_closed = True
            calls = list(self._calls)
        for call in calls:
            call.fail(grpc.StatusCode.CANCELLED, "Channel closed!")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class InMemoryNetwork:
    """Addresses -> servers, and channels to them. Use as a context manager (or call close())."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[str, InMemoryServer] = {}
        self._calls: dict[str, set[_Call]] = {}
        self._executor = futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="in-memory-grpc")
        self.calls_started = 0
        """Every call any channel started, answered or not (an absent server counts too)."""

    # ---- servers -----------------------------------------------------------------------------------

    def add_server(self, address: str) -> InMemoryServer:
        server = InMemoryServer()
        with self._lock:
            self._servers[address] = server
        return server

    def remove_server(self, address: str) -> None:
        """The server at `address` goes away: calls in progress fail UNAVAILABLE, new ones too."""
        with self._lock:
            self._servers.pop(address, None)
            calls = list(self._calls.get(address, ()))
        for call in calls:
            call.fail(grpc.StatusCode.UNAVAILABLE, f"connection to {address} lost")

    def server(self, address: str) -> InMemoryServer | None:
        with self._lock:
            return self._servers.get(address)

    # ---- clients -----------------------------------------------------------------------------------

    def channel(self, address: str, options=None) -> InMemoryChannel:
        """A ChannelFactory for freshet.client._transport.Transport."""
        return InMemoryChannel(self, address)

    def transport(self, bootstrap: str, *, client_id: str = "in-memory-test") -> Transport:
        return Transport(bootstrap, client_id=client_id, channel_factory=self.channel)

    # ---- calls -------------------------------------------------------------------------------------

    def track(self, address: str, call: _Call) -> None:
        with self._lock:
            self.calls_started += 1
            self._calls.setdefault(address, set()).add(call)

    def untrack(self, call: _Call) -> None:
        with self._lock:
            for calls in self._calls.values():
                calls.discard(call)

    def submit(self, run, behaviour, request) -> None:
        self._executor.submit(run, behaviour, request)

    def close(self) -> None:
        with self._lock:
            self._servers.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> InMemoryNetwork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

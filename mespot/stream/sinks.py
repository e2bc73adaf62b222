"""Where published messages go: a ZeroMQ PUB socket, a JSONL recorder, and the bus that feeds them.

Sinks are observers of the stream: `write(topic, payload)` per message, `on_error(exc)` when the
pipeline fails and `on_end()` when it stops; both flush, so nothing already published is lost on
either path. The bus encodes each message once and hands the same bytes to every sink.
"""
from __future__ import annotations

import errno
import os
import re
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Iterable

from mespot.stream.messages import TOPICS, check_stream_id, encode, routing_key

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_HWM = 1000


class PublishError(RuntimeError):
    """A sink that cannot be opened (port in use, bad endpoint, unwritable file): one clear line."""


def check_endpoint(endpoint: str) -> None:
    """Refuse what ZeroMQ would accept but not mean: a tcp port above 65535 is taken modulo 65536
    (99999 listens on 34463). `*` and 0 (any free port) and ipc:// paths pass."""
    match = re.fullmatch(r"tcp://(.+):([^:\]]+)", endpoint)
    if endpoint.startswith("tcp://") and match is None:
        raise PublishError(f"cannot publish on {endpoint}: expected tcp://HOST:PORT")
    if match is not None and match.group(2) != "*":
        port = match.group(2)
        if not port.isdigit() or int(port) > 65535:
            raise PublishError(f"cannot publish on {endpoint}: port {port} is not in 0-65535")


class Sink(ABC):
    """A message observer. `dropped` counts messages it could not pass on."""

    dropped: int = 0

    @abstractmethod
    def write(self, topic: str, payload: bytes) -> None:
        """Pass one encoded message on; must never block the caller."""

    def write_routed(self, key: bytes, topic: str, payload: bytes) -> None:
        """Pass one message on with its routing key (`TOPIC/STREAM/`); sinks that do not route
        (files) ignore the key."""
        self.write(topic, payload)

    def flush(self) -> None:
        """Push out anything buffered."""

    def poll(self) -> None:
        """Housekeeping, called from the publishing thread about once a second."""

    def close(self) -> None:
        """Release the resource (after a final flush)."""

    def on_error(self, error: BaseException) -> None:
        self.flush()

    def on_end(self) -> None:
        self.flush()
        self.close()


class ZmqPublisher(Sink):
    """A publishing socket bound to `endpoint` (tcp:// or ipc://); XPUB, so it sees subscriptions.
    With `connect=True` it connects to `endpoint` instead: the XSUB side of a bus proxy
    (mespot.serve.bus), which forwards its subscribers' subscriptions to every connected publisher.

    Sends are non-blocking: a subscriber that stops reading fills its own queue up to `hwm`
    messages, after which ZeroMQ drops what would go to that subscriber only (silently, per
    subscriber; the `seq` field lets it see the gap). A send the socket refuses is counted in
    `dropped`. On close, queued messages get `linger_ms` to leave.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, hwm: int = DEFAULT_HWM,
                 linger_ms: int = 1000, connect: bool = False) -> None:
        import zmq

        check_endpoint(endpoint)
        self._zmq = zmq
        self.endpoint = endpoint
        self.linger_ms = int(linger_ms)
        self.dropped = 0
        self.sent = 0
        self.subscriptions = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, int(hwm))
        self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)    # every subscription notice, not only new topics
        self._prefixes: set[bytes] = set()
        self._socket.setsockopt(zmq.LINGER, self.linger_ms)
        try:
            (self._socket.connect if connect else self._socket.bind)(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            self._context.term()
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise PublishError(f"cannot publish on {endpoint}: {reason}") from None
        self._closed = False

    def write(self, topic: str, payload: bytes) -> None:
        try:
            self._socket.send_multipart([topic.encode(), payload], flags=self._zmq.NOBLOCK)
            self.sent += 1
        except self._zmq.Again:
            self.dropped += 1

    def write_routed(self, key: bytes, topic: str, payload: bytes) -> None:
        try:
            self._socket.send_multipart([key, payload], flags=self._zmq.NOBLOCK)
            self.sent += 1
        except self._zmq.Again:
            self.dropped += 1

    def poll(self) -> None:
        self.poll_subscriptions()

    def poll_subscriptions(self) -> int:
        """Read pending subscription notices without waiting; return how many subscribes were seen."""
        while self._socket.poll(0):
            notice = self._socket.recv()
            if notice[:1] == b"\x01":
                self.subscriptions += 1
                self._prefixes.add(notice[1:])
        return self.subscriptions

    def wait_for_subscriber(self, timeout_s: float, topic: str = "interval", stream: str | None = None) -> bool:
        """Block until some subscriber receives `topic` (of `stream`, when given: a subscription
        to that stream alone counts too), at most `timeout_s`; True if one does.

        ZeroMQ delivers nothing to a subscriber before its subscription arrives, so a run that must
        not lose its first messages (tests, recordings) waits here before streaming.
        """
        deadline = time.monotonic() + timeout_s
        wanted = routing_key(topic, stream) if stream is not None else topic.encode()
        while True:
            self.poll_subscriptions()
            if any(wanted.startswith(prefix) for prefix in self._prefixes):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._socket.poll(int(min(left, 0.1) * 1000))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._socket.close(linger=self.linger_ms)
            self._context.term()


class JsonlRecorder(Sink):
    """Every message, one JSON object per line (its `topic` field says which), written to `path`.

    Buffered; flushed on every `status` message (about once a second), on error and at the end.
    The path is checked when the recorder is made (its folder must exist: a typo in it is refused,
    never created), but the file is created by the first message, so a run that fails before
    streaming leaves no empty file behind, and an earlier recording at that path is kept.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.dropped = 0
        self._file: IO[bytes] | None = None
        self._closed = False
        folder = self.path.parent
        problem = None
        if self.path.is_dir():
            problem = "it is a folder"
        elif not folder.is_dir():
            problem = f"folder {folder} does not exist"
        elif not os.access(self.path if self.path.exists() else folder, os.W_OK):
            problem = "permission denied"
        if problem:
            raise PublishError(f"cannot record to {self.path}: {problem}")

    def write(self, topic: str, payload: bytes) -> None:
        if self._file is None:
            if self._closed:
                self.dropped += 1           # written after close: counted, never silently lost
                return
            self._file = open(self.path, "wb")
        self._file.write(payload + b"\n")
        if topic == "status":
            self._file.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None


class MessageBus:
    """Numbers, encodes and fans out messages of one stream to its sinks.

    `run` is the stream's restart count under a supervisor (0 for its first run); `extra` fields
    go into every `status` message (a supervised stream's restarts and the ids of its peers)."""

    def __init__(self, sinks: Iterable[Sink], stream: str, *, run: int = 0, extra_status: dict | None = None) -> None:
        self.sinks = list(sinks)
        self.stream = check_stream_id(stream)
        self.run = int(run)
        self.extra_status = dict(extra_status or {})
        self._keys = {topic: routing_key(topic, stream) for topic in TOPICS}
        self._seq = {topic: 0 for topic in TOPICS}
        self._ended = False

    def publish(self, topic: str, body: dict) -> None:
        if topic not in self._seq:
            raise ValueError(f"unknown topic {topic!r}; valid: {', '.join(TOPICS)}")
        if topic == "status" and self.extra_status:
            body = {**body, **self.extra_status}
        payload = encode(topic, self.stream, self._seq[topic], body, run=self.run)
        self._seq[topic] += 1
        key = self._keys[topic]
        for sink in self.sinks:
            sink.write_routed(key, topic, payload)

    @property
    def dropped(self) -> int:
        return sum(sink.dropped for sink in self.sinks)

    def poll(self) -> None:
        for sink in self.sinks:
            sink.poll()

    def counts(self) -> dict[str, int]:
        """Messages published so far per topic."""
        return dict(self._seq)

    def error(self, error: BaseException) -> None:
        for sink in self.sinks:
            sink.on_error(error)

    def end(self) -> None:
        """Flush and close every sink once (later calls do nothing)."""
        if not self._ended:
            self._ended = True
            for sink in self.sinks:
                sink.on_end()

"""One bus for many streams: a ZeroMQ XSUB/XPUB proxy (`zmq.proxy_steerable`, a real ZeroMQ device).

    stream workers (XPUB, connect) ──► XSUB  [proxy thread]  XPUB ──► subscribers (SUB, connect)
                                              │ capture (PUB, inproc)      ▲ monitor (SUB, inproc)

Every stream's publisher connects to the proxy's inner endpoint (`inner`, tcp or ipc); subscribers
connect to the one outer endpoint (`spot-live --pub`) and filter by topic and stream with ZeroMQ's
prefix subscriptions on the routing key `TOPIC/STREAM/` (docs/protocol.md). Subscriptions travel
the other way: the proxy forwards each subscriber's prefixes to every connected publisher, which
then sends only what someone wants. The outer socket is XPUB_VERBOSE, so every subscription passes
(also one that repeats an earlier subscriber's prefix); the capture socket sees them, which is how
`wait_for_subscriber` tells that an outside subscriber arrived.

Queues (high-water marks, HWM): each publisher -> proxy connection and the proxy -> each subscriber
connection hold `hwm` messages each way (default 1000, as a single spot-live). A subscriber that
stops reading loses its own messages only, and sees the loss as a `seq` gap.
"""
from __future__ import annotations

import errno
import itertools
import os
import threading
import time

import zmq

from mespot.stream.sinks import DEFAULT_HWM, PublishError, check_endpoint

_ids = itertools.count()


def loopback(endpoint: str) -> str:
    """An endpoint to connect to for one that was bound (0.0.0.0 and * become 127.0.0.1)."""
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint[6:].rpartition(":")
        if host in ("0.0.0.0", "*", "[::]", "::"):
            return f"tcp://127.0.0.1:{port}"
    return endpoint


class BusProxy:
    """The proxy, running on its own thread from construction until `close()`.

    pub_endpoint: where subscribers connect (bound; PublishError when it cannot be). inner: where
    stream publishers connect (bound; default a free tcp port on 127.0.0.1; `tcp://0.0.0.0:*` for
    workers on other machines). `inner_endpoint` and `pub_endpoint` are the bound addresses, with a
    `*` port resolved.
    """

    def __init__(self, pub_endpoint: str, *, inner: str = "tcp://127.0.0.1:*", hwm: int = DEFAULT_HWM) -> None:
        check_endpoint(pub_endpoint)
        self.hwm = int(hwm)
        self._context = zmq.Context()
        self._name = f"mespot-bus-{os.getpid()}-{next(_ids)}"
        ctx = self._context
        self._xsub = ctx.socket(zmq.XSUB)
        self._xpub = ctx.socket(zmq.XPUB)
        self._capture = ctx.socket(zmq.PUB)
        self._control = ctx.socket(zmq.PAIR)
        self._steer = ctx.socket(zmq.PAIR)
        self._notices = ctx.socket(zmq.SUB)
        for s in (self._xsub, self._xpub, self._capture, self._control, self._steer, self._notices):
            s.setsockopt(zmq.LINGER, 0)
        self._xsub.setsockopt(zmq.RCVHWM, self.hwm)
        self._xpub.setsockopt(zmq.SNDHWM, self.hwm)
        self._xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            self._xpub.bind(pub_endpoint)
        except zmq.ZMQError as exc:
            self._close_sockets()
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise PublishError(f"cannot publish on {pub_endpoint}: {reason}") from None
        try:
            self._xsub.bind(inner)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise PublishError(f"cannot open the bus's inner endpoint {inner}: {exc.strerror}") from None
        self.pub_endpoint = self._xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.inner_endpoint = self._xsub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.monitor_endpoint = f"inproc://{self._name}-out"
        self._xpub.bind(self.monitor_endpoint)
        self._capture.bind(f"inproc://{self._name}-capture")
        self._notices.connect(f"inproc://{self._name}-capture")
        self._notices.setsockopt(zmq.SUBSCRIBE, b"\x01")      # subscription notices only
        self._control.bind(f"inproc://{self._name}-control")
        self._steer.connect(f"inproc://{self._name}-control")
        self._seen: list[bytes] = []
        self._subscribers: list[zmq.Socket] = []
        self._thread = threading.Thread(target=self._serve, name="mespot-bus-proxy", daemon=True)
        self._thread.start()
        self._closed = False

    def _serve(self) -> None:
        try:
            zmq.proxy_steerable(self._xsub, self._xpub, self._capture, self._control)
        except zmq.ContextTerminated:
            pass

    def subscriber(self, topics=(b"status",)) -> zmq.Socket:
        """A SUB socket on the proxy's outer side, in this process (inproc), subscribed to the
        given prefixes: the dashboard, the recorder and the summary read the bus through it.
        Owned by the proxy (closed by `close()`); use it from one thread."""
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.connect(self.monitor_endpoint)
        for t in topics:
            sock.setsockopt(zmq.SUBSCRIBE, t)
        self._subscribers.append(sock)
        return sock

    def subscriptions(self) -> list[bytes]:
        """Every subscription prefix seen so far, one entry per subscribe (repeats included)."""
        while self._notices.poll(0):
            self._seen.append(self._notices.recv()[1:])
        return list(self._seen)

    def wait_for_subscriber(self, timeout_s: float, key: bytes, own: int) -> bool:
        """Wait up to `timeout_s` until more than `own` subscriptions would receive `key` (own:
        how many of those belong to this process's monitor); True if they do."""
        deadline = time.monotonic() + timeout_s
        while True:
            if sum(key.startswith(p) for p in self.subscriptions()) > own:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._notices.poll(int(min(left, 0.1) * 1000))

    def close(self) -> None:
        """Stop the proxy (queued messages are dropped) and release its sockets; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._steer.send(b"TERMINATE")
        except zmq.ZMQError:
            pass
        self._thread.join(5.0)
        self._close_sockets()

    def _close_sockets(self) -> None:
        for s in (*getattr(self, "_subscribers", ()), self._xsub, self._xpub, self._capture, self._control, self._steer, self._notices):
            if not s.closed:
                s.close(linger=0)
        self._context.term()

    def __enter__(self) -> "BusProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Subscriber library for the messages `spot-live` publishes (docs/protocol.md).

    from mespot.client import Subscriber
    with Subscriber("tcp://127.0.0.1:5556", topics=("interval",), timeout=5.0) as sub:
        for message in sub:            # stops after `timeout` seconds without a message
            print(message["kind"], message["onset_frame"], message["offset_frame"])

Needs only pyzmq (no numpy, no torch, no live stack).
"""
from __future__ import annotations

from typing import Any, Iterator

import zmq

from mespot.stream.messages import TOPICS, ProtocolError, decode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"

__all__ = ["DEFAULT_ENDPOINT", "ProtocolError", "Subscriber", "TOPICS"]


class Subscriber:
    """A SUB socket connected to one publisher, decoding messages of the chosen topics.

    `timeout` (seconds, None = wait for ever) bounds each wait; iteration ends when it passes with
    no message, or, with `until_ended=True`, after a `status` message whose state is ended or error
    (subscribe to `status` for that). Connecting succeeds even before the publisher exists; ZeroMQ
    retries in the background, and nothing sent before the subscription reaches the publisher is seen.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, topics=("interval",), *,
                 timeout: float | None = None, until_ended: bool = False, hwm: int = 10000) -> None:
        topics = tuple(topics)
        unknown = [t for t in topics if t not in TOPICS]
        if unknown or not topics:
            raise ValueError(f"unknown topic(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(TOPICS)}")
        self.endpoint = endpoint
        self.topics = topics
        self.timeout = timeout
        self.until_ended = until_ended
        self.received = 0
        self._ended = False
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, int(hwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(f"cannot connect to {endpoint}: {exc.strerror}") from None
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())

    @property
    def ended(self) -> bool:
        """True once a `status` message with state ended or error has been received."""
        return self._ended

    def recv(self, timeout: float | None = ...) -> dict[str, Any] | None:
        """The next message, or None if `timeout` seconds (default: the subscriber's) pass first."""
        timeout = self.timeout if timeout is ... else timeout
        wait_ms = None if timeout is None else max(int(timeout * 1000), 0)
        if not self._socket.poll(wait_ms):
            return None
        frames = self._socket.recv_multipart()
        if len(frames) != 2:
            raise ProtocolError(f"expected a [topic, json] message, got {len(frames)} frames")
        message = decode(frames[0], frames[1])
        self.received += 1
        if message["topic"] == "status" and message.get("state") in ("ended", "error"):
            self._ended = True
        return message

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not (self.until_ended and self.ended):
            message = self.recv()
            if message is None:
                return
            yield message

    def close(self) -> None:
        """Close the socket (pending messages are discarded); safe to call twice."""
        if not self._socket.closed:
            self._socket.close(linger=0)
        if not self._context.closed:
            self._context.term()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

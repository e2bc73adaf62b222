"""Subscriber library for the messages `spot-live` publishes (docs/protocol.md).

    from mespot.client import Subscriber
    with Subscriber("tcp://127.0.0.1:5556", topics=("interval",), timeout=5.0) as sub:
        for message in sub:            # stops after `timeout` seconds without a message
            print(message["kind"], message["onset_frame"], message["offset_frame"])

`streams=("camera0",)` receives those streams only (the filter runs in ZeroMQ, on the routing key
`TOPIC/STREAM/`; docs/protocol.md).

Needs only pyzmq (no numpy, no torch, no live stack).
"""
from __future__ import annotations

from typing import Any, Iterator

import zmq

from mespot.stream.messages import TOPICS, ProtocolError, check_stream_id, decode, routing_key

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"

__all__ = ["DEFAULT_ENDPOINT", "ProtocolError", "Subscriber", "TOPICS"]


class Subscriber:
    """A SUB socket connected to one publisher, decoding messages of the chosen topics.

    `timeout` (seconds, None = wait for ever) bounds each wait; iteration ends when it passes with
    no message, or, with `until_ended=True`, once every stream has sent a `status` whose state is
    ended or error (subscribe to `status` for that). "Every stream": those in `streams` when given,
    else every stream seen so far and every one its statuses name in `run_streams` (a spot-live
    with several streams names them all, so one stream ending first does not end the iteration). Connecting succeeds even before the publisher exists; ZeroMQ
    retries in the background, and nothing sent before the subscription reaches the publisher is seen.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, topics=("interval",), *,
                 timeout: float | None = None, until_ended: bool = False, hwm: int = 10000,
                 streams=None) -> None:
        topics = tuple(topics)
        unknown = [t for t in topics if t not in TOPICS]
        if unknown or not topics:
            raise ValueError(f"unknown topic(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(TOPICS)}")
        self.streams = None if streams is None else tuple(check_stream_id(s) for s in streams)
        if self.streams == ():
            raise ValueError("streams: give at least one stream id, or None for all")
        self.states: dict[str, str] = {}            # newest status state per stream
        self._expected: set[str] = set(self.streams or ())
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
            if self.streams is None:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
            else:
                for stream in self.streams:
                    self._socket.setsockopt(zmq.SUBSCRIBE, routing_key(topic, stream))

    @property
    def ended(self) -> bool:
        """True once every stream (see the class) has sent a status with state ended or error."""
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
        if message["topic"] == "status":
            self._note_status(message)
        return message

    def _note_status(self, message: dict[str, Any]) -> None:
        stream = message.get("stream")
        self.states[stream] = message.get("state")
        if self.streams is None:
            self._expected.add(stream)
            self._expected.update(message.get("run_streams") or ())
        self._ended = all(self.states.get(s) in ("ended", "error") for s in self._expected)

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

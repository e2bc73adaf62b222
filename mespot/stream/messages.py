"""The published messages (docs/protocol.md is their specification): build, encode, decode.

Every message is one JSON object sent as the ZeroMQ multipart [key, json], where the key is
`TOPIC/STREAM/` (routing_key), so a subscriber filters by topic (prefix `interval`) or by one stream
(prefix `interval/camera0/`) with ZeroMQ's own prefix subscriptions. It carries `schema`, `topic`,
`stream`, `run` (0, then one more each time a supervisor restarted the stream) and a per-topic `seq`
(0, 1, 2, ... per stream run, so a subscriber can count what it missed). Times: `*_time` are wall-clock Unix seconds at capture or emission; `*_ms` durations are
milliseconds. Frame numbers are the source's frame indices at the model rate (= feature indices).
Pure Python: clients import this without numpy or the live stack.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1
TOPICS = ("interval", "score", "status")
STATES = ("running", "ended", "error")
# Stream ids travel inside the routing key, so they may not contain its separator `/`.
STREAM_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)


class ProtocolError(ValueError):
    """A received message that does not follow docs/protocol.md (the message says what is wrong)."""


@dataclass(frozen=True)
class FrameStamp:
    """When a frame was captured: wall clock (Unix s), monotonic (s) and position in the source (s)."""

    t_wall: float
    t_monotonic: float
    t_source: float


def interval_message(interval, onset: FrameStamp | None, apex: FrameStamp | None,
                     offset: FrameStamp | None, *, emitted_wall: float, emitted_monotonic: float) -> dict:
    """An `interval` message for a mespot.types.Interval (frame numbers = its feature indices).

    delay_ms is emission minus the capture of the offset frame, on the monotonic clock.
    """
    def wall(stamp):
        return None if stamp is None else round(stamp.t_wall, 6)

    def source(stamp):
        return None if stamp is None else round(stamp.t_source, 6)

    delay = None if offset is None else round((emitted_monotonic - offset.t_monotonic) * 1000.0, 3)
    return {
        "kind": interval.kind, "type_idx": interval.type_idx,
        "onset_frame": int(interval.onset), "apex_frame": int(interval.apex),
        "offset_frame": int(interval.offset),
        "onset_time": wall(onset), "apex_time": wall(apex), "offset_time": wall(offset),
        "onset_source_s": source(onset), "apex_source_s": source(apex), "offset_source_s": source(offset),
        "score": round(float(interval.score), 6),
        "emitted_time": round(emitted_wall, 6), "delay_ms": delay,
    }


def check_stream_id(stream: str) -> str:
    """`stream` if it is a valid id (1-64 of letters, digits, `_ . : -`, starting with a letter or
    digit), else ValueError naming the rule."""
    if not isinstance(stream, str) or _STREAM_ID.fullmatch(stream) is None:
        raise ValueError(f"stream id {stream!r} is not 1-64 letters, digits or _ . : - "
                         f"(starting with a letter or digit)")
    return stream


def stream_id_from(text: str) -> str:
    """A valid stream id made from free text (a file stem, a URL): other characters become `_`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]+", "_", str(text)).strip("_.:-")[:64]
    return cleaned or "stream"


def routing_key(topic: str, stream: str) -> bytes:
    """The first frame of a message: `TOPIC/STREAM/` (the closing `/` makes the prefix
    `interval/cam1/` match cam1 only, not cam10)."""
    return f"{topic}/{stream}/".encode()


def encode(topic: str, stream: str, seq: int, body: dict[str, Any], run: int = 0) -> bytes:
    """The JSON payload: header fields first, then the body (compact, UTF-8)."""
    message = {"schema": SCHEMA_VERSION, "topic": topic, "stream": stream, "run": int(run), "seq": seq, **body}
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def decode(topic: bytes | str, payload: bytes | str) -> dict[str, Any]:
    """Parse and check one received message; raise ProtocolError naming the problem.

    `topic` is the first frame: the routing key `TOPIC/STREAM/`, or a bare `TOPIC` (publishers
    before routing keys); the key must agree with the message's own topic and stream."""
    key = topic.decode(errors="replace") if isinstance(topic, bytes) else topic
    topic, _, rest = key.partition("/")
    key_stream = rest[:-1] if rest.endswith("/") else (rest or None)
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{topic}: payload is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"{topic}: payload is not a JSON object")
    schema = message.get("schema")
    if schema != SCHEMA_VERSION:
        raise ProtocolError(f"{topic}: schema {schema!r}, this client reads schema {SCHEMA_VERSION}")
    if message.get("topic") != topic:
        raise ProtocolError(f"frame topic {topic!r} but message topic {message.get('topic')!r}")
    if key_stream is not None and message.get("stream") != key_stream:
        raise ProtocolError(f"frame stream {key_stream!r} but message stream {message.get('stream')!r}")
    return message

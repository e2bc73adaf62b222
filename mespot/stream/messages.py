"""The published messages (docs/protocol.md is their specification): build, encode, decode.

Every message is one JSON object sent as the ZeroMQ multipart [topic, json] and carries `schema`,
`topic`, `stream` and a per-topic `seq` (0, 1, 2, ... per publisher, so a subscriber can count what
it missed). Times: `*_time` are wall-clock Unix seconds at capture or emission; `*_ms` durations are
milliseconds. Frame numbers are the source's frame indices at the model rate (= feature indices).
Pure Python: clients import this without numpy or the live stack.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1
TOPICS = ("interval", "score", "status")
STATES = ("running", "ended", "error")


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


def encode(topic: str, stream: str, seq: int, body: dict[str, Any]) -> bytes:
    """The JSON payload: header fields first, then the body (compact, UTF-8)."""
    message = {"schema": SCHEMA_VERSION, "topic": topic, "stream": stream, "seq": seq, **body}
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def decode(topic: bytes | str, payload: bytes | str) -> dict[str, Any]:
    """Parse and check one received message; raise ProtocolError naming the problem."""
    topic = topic.decode(errors="replace") if isinstance(topic, bytes) else topic
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
    return message

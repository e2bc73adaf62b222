"""What to watch: one StreamSpec per stream, from repeated --source/--camera or a streams file.

A streams file is YAML, either a list of streams or a mapping with a `streams:` list:

    streams:
      - id: left                  # optional; default from the source (camera0, the file's stem, ...)
        source: rtsp://10.0.0.5/stream1
      - source: clip.mp4          # `camera: N` or `source: URL|FILE|DIR`, exactly one
        realtime: true            # options, all optional: see OPTIONS
        drop_late: true           # (with realtime: the file behaves exactly like a camera)

Ids are the `stream` field of every message and part of its routing key (docs/protocol.md), so
they must be unique and valid (mespot.stream.messages.check_stream_id). They are stable: the same
command line or file gives the same ids, whatever order the streams start in. A derived id that
collides with an earlier one gets `-2`, `-3`, ... in the order the streams are listed; an id given
twice is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mespot.errors import InputError
from mespot.stream.messages import check_stream_id, stream_id_from

# Per-stream options of a streams file: name -> (type, meaning).
OPTIONS: dict[str, tuple[type, str]] = {
    "realtime": (bool, "play a file or image folder at its own rate, as a camera would (default false)"),
    "image_fps": (float, "frame rate of an image folder, which carries no timestamps (default 30)"),
    "drop_late": (bool, "drop the oldest frame when the stream falls behind, as a camera does (default: "
                        "true for cameras and URLs, false for files, which wait instead)"),
}


@dataclass(frozen=True)
class StreamSpec:
    """One stream: its id, what to open (camera index or source text) and its options."""

    id: str
    source: int | str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def realtime(self) -> bool:
        return bool(self.options.get("realtime", False))

    @property
    def capture_policy(self) -> str | None:
        """The capture queue's policy (mespot.stream.capture): None for the source's default."""
        if "drop_late" not in self.options:
            return None
        return "drop_oldest" if self.options["drop_late"] else "block"

    def source_options(self) -> dict[str, Any]:
        """Keyword options for mespot.stream.sources.open_source beyond realtime and the rate."""
        if "image_fps" in self.options and isinstance(self.source, str) and Path(self.source).is_dir():
            return {"fps": float(self.options["image_fps"])}
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StreamSpec":
        return cls(d["id"], d["source"], dict(d.get("options", {})))


def derived_id(source: int | str) -> str:
    """The default id of a source: cameraN, a file's or folder's stem, a URL's host and path."""
    if isinstance(source, int):
        return f"camera{source}"
    text = str(source)
    if "://" in text:
        return stream_id_from(text.split("://", 1)[1])
    return stream_id_from(Path(text).stem or Path(text).name)


def assign_ids(entries: list[tuple[str | None, int | str, dict[str, Any]]]) -> list[StreamSpec]:
    """StreamSpecs for (given id or None, source, options) in order: given ids checked and kept,
    the others derived and made unique. InputError for an invalid or repeated given id."""
    given: set[str] = set()
    for sid, _, _ in entries:
        if sid is None:
            continue
        try:
            check_stream_id(sid)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if sid in given:
            raise InputError(f"stream id {sid!r} is given to two streams; ids must be unique")
        given.add(sid)
    used = set(given)
    specs = []
    for sid, source, options in entries:
        if sid is None:
            base = derived_id(source)
            sid, k = base, 2
            while sid in used:
                sid, k = f"{base}-{k}", k + 1
            used.add(sid)
        specs.append(StreamSpec(sid, source, dict(options)))
    return specs


def _check_options(where: str, options: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in options.items():
        if name not in OPTIONS:
            raise InputError(f"{where}: unknown option {name!r}; valid: id, source, camera, {', '.join(OPTIONS)}")
        kind = OPTIONS[name][0]
        if kind is bool and not isinstance(value, bool):
            raise InputError(f"{where}: {name} must be true or false, got {value!r}")
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InputError(f"{where}: {name} must be a positive number, got {value!r}")
            value = float(value)
        out[name] = value
    return out


def load_streams_file(path: str | Path) -> list[StreamSpec]:
    """The streams of a YAML streams file (module docstring); InputError naming the file and entry."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such streams file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"{path}: not valid YAML" + (f" (at line {mark.line + 1})" if mark else "")) from None
    if isinstance(data, dict) and set(data) == {"streams"}:
        data = data["streams"]
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty list of streams (or `streams:` with one)")
    entries = []
    for k, item in enumerate(data, 1):
        where = f"{path}: stream {k}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected a mapping with source or camera, got {item!r}")
        item = dict(item)
        sid = item.pop("id", None)
        if sid is not None:
            sid = str(sid)
        has_source, has_camera = "source" in item, "camera" in item
        if has_source == has_camera:
            raise InputError(f"{where}: give exactly one of source and camera")
        if has_camera:
            camera = item.pop("camera")
            if isinstance(camera, bool) or not isinstance(camera, int) or camera < 0:
                raise InputError(f"{where}: camera must be an index >= 0, got {camera!r}")
            source: int | str = camera
        else:
            source = item.pop("source")
            if not isinstance(source, str) or not source.strip():
                raise InputError(f"{where}: source must be a URL, file or folder, got {source!r}")
            if not source.lower().startswith(("rtsp://", "rtmp://", "http://", "https://")):
                resolved = Path(source).expanduser()
                if not resolved.is_absolute():
                    resolved = path.parent / resolved          # relative to the streams file
                source = str(resolved)
        entries.append((sid, source, _check_options(where, item)))
    return assign_ids(entries)

"""`spot-sub`: subscribe to a running `spot-live` and show (or save) the intervals it publishes.

Stops when every stream's final status says ended (or error), after --count intervals, after
--timeout seconds without a message, or on Ctrl-C; whatever was received is written out in all cases.
A spot-live with several streams publishes them all on one endpoint; --stream ID (repeatable) takes
only those (ZeroMQ filters them in the publisher, docs/protocol.md). The table names each row's stream.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

from mespot.cli.args import positive
from mespot.client import DEFAULT_ENDPOINT, ProtocolError, Subscriber
from mespot.stream.messages import TOPICS


def _topics(text: str) -> tuple[str, ...]:
    topics = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in topics if t not in TOPICS]
    if unknown or not topics:
        raise argparse.ArgumentTypeError(
            f"unknown topic(s) {', '.join(unknown) or '(none)'}; valid: {', '.join(TOPICS)}")
    return topics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spot-sub", description=__doc__.splitlines()[0].replace("`", ""),
        epilog="Message fields: docs/protocol.md. Example: spot-sub --csv found.csv --count 10")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT,
                   help=f"publisher to connect to, tcp://HOST:PORT or ipc://PATH (default {DEFAULT_ENDPOINT})")
    p.add_argument("--topics", type=_topics, default=("interval",),
                   help=f"comma-separated topics to show and record, of {','.join(TOPICS)} (default interval)")
    p.add_argument("--stream", action="append", metavar="ID", dest="streams",
                   help="only this stream (repeat for several; default: every stream on the endpoint)")
    p.add_argument("--jsonl", type=Path, metavar="OUT", help="write every received message of --topics, one JSON per line")
    p.add_argument("--csv", type=Path, metavar="OUT",
                   help="write intervals as a MEGC proposal CSV: video_name,start_frame,end_frame,score,type_idx")
    p.add_argument("--video-name", metavar="NAME",
                   help="video_name column of --csv (default: the message's stream id)")
    p.add_argument("--count", type=positive(int), metavar="N", help="stop after N intervals")
    p.add_argument("--timeout", type=positive(float), metavar="S",
                   help="stop after S seconds without any message (default: wait for ever)")
    return p


class _View:
    """The live table (on a terminal) or one plain line per interval (when piped)."""

    def __init__(self, live: bool) -> None:
        self.rows: deque[dict] = deque(maxlen=20)
        self.last_status: dict[str, dict] = {}          # per stream
        self.live = None
        if live:
            from rich.live import Live
            self.live = Live(self._render(), refresh_per_second=4, transient=False)
            self.live.start()

    def _render(self):
        from rich.table import Table

        table = Table(title="intervals (newest last)", caption=self._caption())
        for col in ("stream", "kind", "onset", "apex", "offset", "score", "delay ms"):
            table.add_column(col, justify="left" if col in ("stream", "kind") else "right")
        for m in self.rows:
            table.add_row(m["stream"], m["kind"], str(m["onset_frame"]), str(m["apex_frame"]),
                          str(m["offset_frame"]), f"{m['score']:.3f}",
                          "-" if m["delay_ms"] is None else f"{m['delay_ms']:.0f}")
        return table

    def _caption(self) -> str:
        if not self.last_status:
            return "waiting for the publisher's status"
        return "\n".join(f"{sid}: {s['state']}  {s['fps']:.1f} fps  face {'yes' if s['face_present'] else 'no'}"
                         + (f"  restarts {s['restarts']}" if s.get("restarts") else "")
                         for sid, s in sorted(self.last_status.items()))

    def interval(self, message: dict) -> None:
        self.rows.append(message)
        if self.live is not None:
            self.live.update(self._render())
        else:
            print(f"{message['stream']} {message['kind']} frames {message['onset_frame']}-"
                  f"{message['apex_frame']}-{message['offset_frame']} score {message['score']:.3f} "
                  f"delay {message['delay_ms']} ms", flush=True)

    def status(self, message: dict) -> None:
        self.last_status[message["stream"]] = message
        if self.live is not None:
            self.live.update(self._render())

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    wanted = set(args.topics)
    try:
        # status is always subscribed: it carries the end of the stream.
        sub = Subscriber(args.endpoint, topics=tuple(wanted | {"status"}), timeout=args.timeout,
                         until_ended=True, streams=args.streams)
    except ValueError as exc:
        print(f"spot-sub: {exc}", file=sys.stderr)
        return 2
    try:
        jsonl = open(args.jsonl, "w") if args.jsonl else None
    except OSError as exc:
        sub.close()
        print(f"spot-sub: cannot write {args.jsonl}: {exc.strerror}", file=sys.stderr)
        return 2
    view = _View(live=sys.stdout.isatty())
    intervals: list[dict] = []
    reason = "publisher ended"
    started = time.monotonic()
    try:
        for message in sub:
            topic = message["topic"]
            if topic in wanted and jsonl is not None:
                jsonl.write(json.dumps(message) + "\n")
                jsonl.flush()
            if topic == "status":
                view.status(message)
            elif topic == "interval":
                intervals.append(message)
                view.interval(message)
                if args.count and len(intervals) >= args.count:
                    reason = f"{args.count} intervals received"
                    break
        else:
            if not sub.ended:
                reason = f"no message for {args.timeout:g} s"
    except KeyboardInterrupt:
        reason = "interrupted"
    except ProtocolError as exc:
        reason = f"bad message: {exc}"
    finally:
        view.close()
        sub.close()
        if jsonl is not None:
            jsonl.close()
        if args.csv:
            _write_csv(args.csv, intervals, args.video_name)
    print(f"spot-sub: {len(intervals)} interval(s) in {time.monotonic() - started:.1f} s; stopped: {reason}",
          file=sys.stderr)
    return 1 if reason.startswith("bad message") else 0


def _write_csv(path: Path, intervals: list[dict], video_name: str | None) -> None:
    from mespot.eval.metrics import Prediction, write_predictions

    write_predictions(path, [Prediction(video_name or m["stream"], m["onset_frame"], m["offset_frame"],
                                        m["score"], m["kind"]) for m in intervals])


if __name__ == "__main__":
    sys.exit(main())

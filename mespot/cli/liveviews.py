"""`spot-live`'s optional views and outlets: --view (rerun), --lsl (Lab Streaming Layer), --demo-gt.

Kept out of mespot.cli.live so that the loop's CLI only calls four functions: `add_arguments`,
`check` (before anything slow loads), `open_views` (once the pipeline is built) and, at the end,
`LiveViews.close` / `linger`. Each extra is imported only when asked for; a missing one is one
line naming it (exit 2).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mespot.cli.args import at_least
from mespot.errors import InputError

DEFAULT_WEB_PORT = 9090


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("views and lab outlets (optional extras: mespot[view], mespot[lsl]; docs/view.md)")
    g.add_argument("--view", nargs="?", const="native", metavar="native|web|FILE.rrd",
                   help="show the face, its 12 regions and their motion, the probability curves and each interval "
                        "in rerun: a viewer window (native, the default), rerun's web viewer on 127.0.0.1 "
                        "(web: open the printed address), or saved to FILE.rrd")
    g.add_argument("--view-port", type=at_least(int, 1), default=DEFAULT_WEB_PORT, metavar="PORT",
                   help=f"HTTP port of --view web (default {DEFAULT_WEB_PORT}; the data goes on a free port)")
    g.add_argument("--view-keep", action="store_true",
                   help="with --view web, keep serving the view after the run until Ctrl-C (the page itself "
                        "keeps what it received, but a page opened or reloaded later needs the server)")
    g.add_argument("--lsl", action="store_true",
                   help="publish each interval on a Lab Streaming Layer marker stream, as JSON stamped with its "
                        "onset's capture time on the LSL clock")
    g.add_argument("--lsl-probs", action="store_true",
                   help="with --lsl, also stream the 8 probabilities of every valid frame at the model rate")
    g.add_argument("--demo-gt", type=Path, metavar="FILE.csv",
                   help="with --demo, write the planted intervals as an annotation CSV (for spot-plot --gt)")


def check(args) -> None:
    """Refuse what cannot work before the model and tracker load (InputError, one line)."""
    from mespot.view import require

    if args.view is not None:
        from mespot.view.live_view import check_view_target

        check_view_target(args.view, args.view_port)
    if args.view_keep and args.view != "web":
        raise InputError("--view-keep needs --view web")
    if args.lsl_probs and not args.lsl:
        raise InputError("--lsl-probs needs --lsl")
    if args.lsl:
        require("pylsl", "lsl", "--lsl")
    if args.demo_gt is not None:
        if not args.demo:
            raise InputError("--demo-gt needs --demo")
        if not args.demo_gt.parent.is_dir():
            raise InputError(f"cannot write {args.demo_gt}: folder {args.demo_gt.parent} does not exist")


def refuse_multi(args) -> None:
    """--view, --lsl and --demo-gt are for one stream; several streams run in worker processes."""
    asked = [flag for flag, on in (("--view", args.view is not None), ("--lsl", args.lsl),
                                   ("--demo-gt", args.demo_gt is not None)) if on]
    if asked:
        raise InputError(f"{', '.join(asked)} work with one stream, not several (docs/view.md)")


def wants_pacing(args) -> bool:
    """A person watching a view sees the demo at its own pace, as with the dashboard."""
    return args.view in ("native", "web")


def write_demo_gt(args, clip: Path) -> None:
    """Copy the demo's planted annotations (written beside the clip, mespot.synth.demo) to --demo-gt."""
    if args.demo_gt is not None:
        shutil.copyfile(clip.with_suffix(".csv"), args.demo_gt)


@dataclass
class LiveViews:
    """The observers asked for, to add to the pipeline; `close()` after the run."""

    view: object | None = None
    lsl: object | None = None
    observers: list = field(default_factory=list)

    def close(self, err) -> None:
        if self.view is not None:
            try:
                self.view.close()
            except RuntimeError as exc:          # the loop and its messages are not affected
                err.print(f"[red]spot-live: {exc}[/red]")
            err.print(self.view.describe())
        if self.lsl is not None:
            err.print(self.lsl.describe())
            self.lsl.close()

    keep: bool = False

    def shutdown(self) -> None:
        """Stop the web view's server, last (after the summary and linger)."""
        if self.view is not None:
            self.view.shutdown()

    def linger(self, err) -> None:
        """A served web view dies with the process: with --view-keep, keep it up until Ctrl-C."""
        if not self.keep or self.view is None:
            return
        done = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: done.set())
        try:
            err.print(f"the view stays at {self.view.url} ; Ctrl-C to quit")
            while not done.wait(0.5):
                pass
        finally:
            signal.signal(signal.SIGINT, previous)


def open_views(args, *, stream: str, config, frontend: dict, err) -> LiveViews:
    """Open what --view / --lsl ask for (after check()); prints where to look."""
    out = LiveViews(keep=args.view_keep)
    if args.view is not None:
        from mespot.view.live_view import open_live_view

        out.view = open_live_view(args.view, stream=stream, config=config, frontend=frontend,
                                  web_port=args.view_port)
        out.view.start()
        out.observers.append(out.view)
        if args.view == "web":
            err.print(f"view: open {out.view.url}")
        elif args.view != "native":
            err.print(f"view: saving to {args.view} (open it with: rerun {args.view})")
    if args.lsl:
        from mespot.view.lsl import LslOutlets

        out.lsl = LslOutlets(stream, fps=config.fps, probabilities=args.lsl_probs)
        out.observers.append(out.lsl)
        err.print(f"LSL: marker stream 'mespot {stream} intervals'"
                  + (f", probabilities 'mespot {stream} probabilities'" if args.lsl_probs else ""))
    return out

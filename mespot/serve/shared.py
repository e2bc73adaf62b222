"""Shared inference: one batched engine for every stream of a spot-live (`--inference shared`).

    worker (front-end, picker, publishing)                 supervisor process
      pipeline ── RemoteEngine.push ── REQ ═════════► ROUTER ── EngineServer thread
                                                               MultiStreamEngine over ONE runtime

Each stream's worker keeps its whole pipeline except the model: its `ScoreEngine` is a
RemoteEngine that sends (index, features, valid) to the EngineServer and waits for the rows that
became final. The server takes every request that has arrived, pushes them into
mespot.engine.multistream.MultiStreamEngine as ONE step (one model call for all their windows) and
answers each stream with its own rows. MultiStreamEngine's rows equal separate OnlineEngines'
bitwise on ONNX Runtime CPU (docs/gpu.md), so a stream's results are the same as with its own
engine (tests/test_serve.py compares them with single-stream runs).

Why: one runtime instead of one per stream (memory), and on a GPU the batch is every stream that
is waiting, instead of N batches of one. What it costs: a round trip per frame (a few hundred µs
on one machine), and the streams wait for each other's windows in a step. Requests are never
reordered within a stream: a worker has at most one outstanding (REQ).

Wire format (multipart frames after REQ's empty delimiter): an op (`join`, `push`, `flush`, `leave`)
and its arguments; answers are [status, payload]: `ok` with the rows as `n` (int64), indices (n
int64) and probabilities (n x 8 float32), or `error` with a UTF-8 line.
"""
from __future__ import annotations

import threading

import numpy as np
import zmq

from mespot.engine.multistream import MultiStreamEngine
from mespot.engine.runtime.base import N_ROIS

REPLY_TIMEOUT_S = 30.0        # a worker gives up on a server that does not answer (it is gone)


class EngineServerError(RuntimeError):
    """The shared engine refused a request or stopped answering."""


def _rows_payload(rows: list[tuple[int, np.ndarray]]) -> list[bytes]:
    index = np.array([i for i, _ in rows], np.int64)
    probs = np.array([p for _, p in rows], np.float32).reshape(len(rows), 8)
    return [b"ok", np.int64(len(rows)).tobytes() + index.tobytes() + probs.tobytes()]


def _rows_from(payload: bytes) -> list[tuple[int, np.ndarray]]:
    n = int(np.frombuffer(payload[:8], np.int64)[0])
    index = np.frombuffer(payload[8:8 + 8 * n], np.int64)
    probs = np.frombuffer(payload[8 + 8 * n:], np.float32).reshape(n, 8)
    return [(int(i), probs[k].copy()) for k, i in enumerate(index)]


class EngineServer:
    """One MultiStreamEngine over `runtime`, answering RemoteEngines on `endpoint` (bound; `*`
    ports resolved in `.endpoint`) from its own thread until `close()`. `steps` and `batched`
    count the engine steps and the pushes they held (batched / steps = mean batch)."""

    def __init__(self, runtime, endpoint: str = "tcp://127.0.0.1:*") -> None:
        self.engine = MultiStreamEngine(runtime)
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._slots: dict[bytes, int] = {}        # client identity -> engine slot
        self._stop = threading.Event()
        self.steps = self.batched = 0
        self.max_batch = 0
        self._thread = threading.Thread(target=self._serve, name="mespot-engine-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50):
                continue
            pushes, others = [], []
            while self._socket.poll(0):
                frames = self._socket.recv_multipart()
                (pushes if frames[2] == b"push" else others).append(frames)
            for frames in others:
                self._answer(frames[0], self._other(frames[0], frames[2], frames[3:]))
            if pushes:
                self._step(pushes)

    def _reply(self, identity: bytes, parts: list[bytes]) -> None:
        self._socket.send_multipart([identity, b"", *parts])

    def _answer(self, identity: bytes, parts: list[bytes]) -> None:
        self._reply(identity, parts)

    def _other(self, identity: bytes, op: bytes, args: list[bytes]) -> list[bytes]:
        try:
            if op == b"join":
                if identity in self._slots:
                    raise ValueError("this client already joined")
                self._slots[identity] = int(self.engine.join(1)[0])
                return _rows_payload([])
            slot = self._slots.get(identity)
            if slot is None:
                raise ValueError(f"{op.decode(errors='replace')} before join")
            if op == b"flush":
                return _rows_payload(self.engine.flush([slot]).for_stream(slot))
            if op == b"leave":
                del self._slots[identity]
                return _rows_payload(self.engine.leave([slot]).for_stream(slot))
            raise ValueError(f"unknown op {op!r}")
        except ValueError as exc:
            return [b"error", str(exc).encode()]

    def _step(self, pushes: list[list[bytes]]) -> None:
        good, slots, indices, feats, valid = [], [], [], [], []
        for frames in pushes:
            identity, args = frames[0], frames[3:]
            slot = self._slots.get(identity)
            if slot is None or len(args) != 3 or len(args[1]) != N_ROIS * 2 * 4:
                self._reply(identity, [b"error", b"push before join, or a malformed push"])
                continue
            good.append(identity)
            slots.append(slot)
            indices.append(int(np.frombuffer(args[0], np.int64)[0]))
            feats.append(np.frombuffer(args[1], np.float32).reshape(N_ROIS, 2))
            valid.append(args[2] == b"\x01")
        if not good:
            return
        try:
            rows = self.engine.push(np.array(slots), np.array(indices), np.stack(feats), np.array(valid))
        except ValueError as exc:                 # e.g. an index not after the previous one
            for identity in good:
                self._reply(identity, [b"error", str(exc).encode()])
            return
        self.steps += 1
        self.batched += len(good)
        self.max_batch = max(self.max_batch, len(good))
        for identity, slot in zip(good, slots):
            self._reply(identity, _rows_payload(rows.for_stream(slot)))

    def counts(self) -> dict[str, int]:
        """Engine steps, the pushes they held, and the largest batch."""
        return {"steps": self.steps, "batched": self.batched, "max_batch": self.max_batch}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._socket.close(linger=0)
        self._context.term()


class RemoteEngine:
    """The ScoreEngine of a stream whose model runs in an EngineServer (one outstanding request).
    Use it from one thread (the pipeline's); `close()` leaves the engine (after a final flush)."""

    def __init__(self, endpoint: str) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        self.endpoint = endpoint
        self._call(b"join")

    def _call(self, op: bytes, *args: bytes) -> list[tuple[int, np.ndarray]]:
        self._socket.send_multipart([op, *args])
        if not self._socket.poll(int(REPLY_TIMEOUT_S * 1000)):
            raise EngineServerError(f"the shared engine at {self.endpoint} did not answer within {REPLY_TIMEOUT_S:g} s")
        status, payload = self._socket.recv_multipart()
        if status != b"ok":
            raise EngineServerError(f"the shared engine refused {op.decode()}: {payload.decode(errors='replace')}")
        return _rows_from(payload)

    def push(self, index: int, features: np.ndarray, valid: bool) -> list[tuple[int, np.ndarray]]:
        feats = np.ascontiguousarray(features, np.float32).reshape(N_ROIS, 2)
        return self._call(b"push", np.int64(index).tobytes(), feats.tobytes(), b"\x01" if valid else b"\x00")

    def flush(self) -> list[tuple[int, np.ndarray]]:
        return self._call(b"flush")

    def close(self) -> None:
        if self._socket.closed:
            return
        try:
            self._call(b"leave")
        finally:
            self._socket.close(linger=0)
            self._context.term()

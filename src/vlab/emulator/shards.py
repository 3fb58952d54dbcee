"""More emulator processes on one port: ``vlab emulator --processes N`` (Linux's ``SO_REUSEPORT``).

One emulator's event loop runs on one core. With ``--processes N`` the process the user started serves
as usual and starts N - 1 more (``python -m vlab emulator … --shard K/N``). Each is a whole emulator, with
its own Silero worker and recognition process, bound to the same port with ``SO_REUSEPORT``; the kernel
spreads new connections across them. A process's connections stay with it from upgrade to close.

The key reaches the other processes in their environment (:data:`KEY_ENV`), never on a command line. Each
prints :data:`READY` once it serves and stops when its standard input closes: when the first process
stops, or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Final

from vlab._process import check_process_count
from vlab.emulator.faults import Fault
from vlab.errors import ConfigError, VlabError

log = logging.getLogger("vlab.emulator")

KEY_ENV: Final = "VLAB_EMULATOR_SHARD_KEY"
"""The environment variable that gives the other processes the clients' key."""
READY: Final = "vlab emulator process ready"
"""The line another process prints once it serves."""
START_TIMEOUT_S: Final = 60.0
"""How long another process may take to serve (it loads Silero and the recognizer first)."""
STOP_TIMEOUT_S: Final = 10.0
"""How long another process may take to close its connections once told to stop."""


def check_processes(
    count: int,
    *,
    max_sessions: int | None = None,
    faults: Sequence[Fault] = (),
    platform: str = sys.platform,
    cores: int | None = None,
) -> None:
    """Raise :class:`ConfigError` if ``count`` processes cannot serve these settings as one emulator."""
    if count < 1:
        raise ConfigError(f"--processes must be 1 or more, got {count}.")
    if count == 1:
        return
    check_process_count(count, "--processes", cores=cores)
    if platform != "linux":
        raise ConfigError(
            f"--processes {count} needs Linux, whose SO_REUSEPORT spreads connections across the processes "
            f"that share a port ({platform} does not). Run one emulator per port instead (--processes 1)."
        )
    if max_sessions is not None:
        raise ConfigError(
            f"--max-sessions counts one process's sessions: with --processes {count} the quota would be "
            f"up to {count} times larger. Rehearse a quota with one process (drop --processes)."
        )
    if any(fault.kind == "rate_limit" for fault in faults):
        raise ConfigError(
            f"a rate_limit fault counts one process's connections: with --processes {count} each process "
            "would refuse its own. Rehearse rate limits with one process (drop --processes)."
        )


class Shards:
    """The other processes of an emulator served by ``count`` processes (this one serves too).

    Args:
        command: The command line of another process, without its ``--shard K/N``.
        api_key: The key clients send (given to each process in its environment).
        count: How many processes serve the port, this one included.
    """

    def __init__(self, command: Sequence[str], api_key: str, count: int) -> None:
        self._command = list(command)
        self._api_key = api_key
        self.count = count
        self._procs: list[asyncio.subprocess.Process] = []

    @property
    def pids(self) -> list[int]:
        """The process ids of the other processes started."""
        return [proc.pid for proc in self._procs]

    async def start(self) -> None:
        """Start the other processes and wait until each serves.

        Raises:
            VlabError: One did not start (its error is on standard error); the others are stopped.
        """
        env = {**os.environ, KEY_ENV: self._api_key}
        try:
            for index in range(1, self.count):
                proc = await asyncio.create_subprocess_exec(
                    *self._command,
                    "--shard",
                    f"{index}/{self.count}",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                )
                self._procs.append(proc)
            for index, proc in enumerate(self._procs, start=1):
                await self._ready(index, proc)
        except BaseException:
            await self.stop()
            raise

    async def _ready(self, index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            why = f"did not serve within {START_TIMEOUT_S:g} s"
        else:
            said = line.decode(errors="replace").strip()
            if said == READY:
                return
            if line:
                why = f"printed {said!r} where it should have said it serves"
            else:  # its output closed: it is exiting (its exit code may not be known yet)
                try:
                    why = f"exited with code {await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)}"
                except asyncio.TimeoutError:
                    why = "closed its output without serving"
        raise VlabError(
            f"emulator process {index} of {self.count} {why}; its error is above. Run one process "
            "(drop --processes) to see whether the emulator starts at all."
        )

    async def watch(self) -> None:
        """Serve on; say so when another process exits (the rest, this one included, keep serving)."""

        async def one(index: int, proc: asyncio.subprocess.Process) -> None:
            code = await proc.wait()
            log.warning(
                "emulator process %d of %d exited with code %s; the other processes keep serving the port",
                index,
                self.count,
                code,
            )

        await asyncio.gather(*(one(i, proc) for i, proc in enumerate(self._procs, start=1)))
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Tell each process to stop (close its input) and wait for it; kill one that does not stop."""
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


async def until_input_closes() -> None:
    """Return once this process's standard input closes: the first process stopped, or died."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(1 << 16):
        pass

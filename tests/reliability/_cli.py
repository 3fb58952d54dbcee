"""Run the ``vlab`` command line in a child process, as a new user would, with no Azure sign-in."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import vlab


def base_env(home: Path) -> dict[str, str]:
    """This environment without any Azure sign-in: no AZURE_* variable, an empty Azure CLI profile."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "SSL_CERT"))
    }
    env.update(AZURE_CONFIG_DIR=str(home / "azure-cli"), HOME=str(home))
    env["PYTHONPATH"] = str(Path(vlab.__file__).parents[1])  # the vlab under test, from any folder
    return env


async def run_vlab(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """``python -m vlab *args``; returns the exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vlab",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)  # a safety net, not a measurement
    return proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode()

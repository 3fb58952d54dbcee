"""Microsoft's telemetry samples (the SDK's ``samples/telemetry``), unmodified, against the emulator.

They need no sound card: each sends a text message, reads events until ``response.done`` and traces every
connect, send and receive with OpenTelemetry, to the console or to Azure Monitor. The Azure Monitor one
exports to the ingestion endpoint its connection string names: a local stand-in here. The samples come
from the installed SDK's source distribution (``tests/_sdk_samples.py``).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests._sdk_samples import azure_monitor_path, samples_dir
from vlab.testing import fast_emulator, serving

KEY = "telemetry-samples-key"
CONSOLE_SAMPLES = (
    "sample_voicelive_with_console_tracing.py",
    "sample_voicelive_with_console_tracing_custom_attributes.py",
    "sample_voicelive_with_content_recording.py",
    "sample_voicelive_with_telemetry_enablement.py",
)
AZURE_MONITOR_SAMPLE = "sample_voicelive_with_azure_monitor_tracing.py"
RUN_TIMEOUT_S = 120.0
"""Longest wait for a sample to end (a failure's bound, not a pacing)."""


def console_spans(output: str) -> list[dict[str, Any]]:
    """The spans OpenTelemetry's console exporter printed (one indented JSON object each) among the lines."""
    spans, block = [], None
    for line in output.splitlines():
        if line == "{":
            block = [line]
        elif block is not None:
            block.append(line)
            if line == "}":
                spans.append(json.loads("\n".join(block)))
                block = None
    return spans


async def _run(sample: Path, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(sample), cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{sample.name} did not end in {RUN_TIMEOUT_S:g} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


class Ingestion:
    """A stand-in for Azure Monitor's ingestion endpoint: it accepts every item and keeps it."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    async def track(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        text = body.decode()
        items = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(x) for x in text.splitlines() if x]
        )
        self.items += items
        return web.json_response({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})

    def metrics(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, properties) of every metric received."""
        return [
            (metric["name"], item["data"]["baseData"].get("properties") or {})
            for item in self.items
            if item.get("data", {}).get("baseType") == "MetricData"
            for metric in item["data"]["baseData"]["metrics"]
        ]


@pytest.fixture
async def ingestion() -> AsyncIterator[tuple[Ingestion, str]]:
    """The stand-in, and an Application Insights connection string that sends to it."""
    stand_in = Ingestion()
    app = web.Application()
    app.router.add_post("/{tail:.*}", stand_in.track)
    zeros = "00000000-0000-0000-0000-000000000000"
    async with serving(app) as base:
        yield stand_in, f"InstrumentationKey={zeros};IngestionEndpoint={base}/;LiveEndpoint={base}/"


async def test_the_telemetry_samples_run_unmodified_and_trace_the_emulator_s_session(ingestion, tmp_path):
    folder = samples_dir() / "telemetry"
    monitor = {"PYTHONPATH": str(azure_monitor_path())}  # before the clock of any run starts
    stand_in, connection_string = ingestion
    async with fast_emulator(api_key=KEY) as emu:
        env = {
            **os.environ,
            "AZURE_VOICELIVE_ENDPOINT": emu.endpoint,
            "AZURE_VOICELIVE_API_KEY": KEY,
            "AZURE_VOICELIVE_USE_API_KEY": "true",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string,
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # its own usage reports go to Microsoft
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(tmp_path),  # the Azure Monitor exporter keeps its retry files in a folder there
        }
        names = (*CONSOLE_SAMPLES, AZURE_MONITOR_SAMPLE)
        runs = await asyncio.gather(
            *(
                _run(folder / name, env | (monitor if name == AZURE_MONITOR_SAMPLE else {}), tmp_path)
                for name in names
            )
        )
    outputs = dict(zip(names, runs, strict=True))
    for name, (code, output) in outputs.items():
        assert code == 0 and "Traceback" not in output, (name, output[-3000:])
        assert "Received event: response.done" in output, (name, output[-3000:])

    for name in CONSOLE_SAMPLES:
        spans = console_spans(outputs[name][1])
        by_name = {span["name"]: span for span in spans}
        for wanted in ("connect", "send session.update", "send conversation.item.create",
                       "send response.create", "recv session.created", "recv response.done", "close"):  # fmt: skip
            assert wanted in by_name, (name, sorted(by_name))
        connect = by_name["connect"]["attributes"]
        done = by_name["recv response.done"]["attributes"]
        assert connect["gen_ai.request.model"] == "gpt-realtime" and connect["server.address"] == "127.0.0.1"
        assert (
            connect["gen_ai.voice.session_id"].startswith("sess_") and connect["gen_ai.voice.turn_count"] == 1
        )
        assert done["gen_ai.response.id"].startswith("resp_") and done["gen_ai.response.finish_reasons"] == (
            '["completed"]'
        )
        replies = [
            e for span in spans for e in span.get("events", ()) if e["name"] == "gen_ai.output.messages"
        ]
        assert replies, name

    recorded = console_spans(outputs["sample_voicelive_with_content_recording.py"][1])
    said = [
        event["attributes"]["gen_ai.event.content"]
        for span in recorded
        for event in span.get("events", ())
        if event["name"] == "gen_ai.output.messages"
    ]
    assert any("You said: Hello, tell me a joke." in content for content in said)  # the emulator's reply

    custom = console_spans(outputs["sample_voicelive_with_console_tracing_custom_attributes.py"][1])
    assert all(span["attributes"].get("trace_sample.sessionid") == "my-session-123" for span in custom)
    sends = [span for span in custom if span["name"].startswith("send")]
    assert sends and all(
        span["attributes"]["trace_sample.send.context"] == "user-interaction" for span in sends
    )

    durations = [
        props for metric, props in stand_in.metrics() if metric == "gen_ai.client.operation.duration"
    ]
    assert {"gen_ai.operation.name": "connect", "server.address": "127.0.0.1"}.items() <= durations[0].items()

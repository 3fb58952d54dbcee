"""The session panel: configure, start and watch one Voice Live session from a notebook."""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import ipywidgets as widgets

from vlab import protocol
from vlab.audio import g711
from vlab.audio.formats import AUDIO_KINDS, AUDIO_SUFFIXES
from vlab.audio.pacing import parse_speed
from vlab.bundled import bundled_dir
from vlab.endpoint import ENV_API_KEY, ENV_ENDPOINT, Secret
from vlab.errors import ConfigError, VlabError, check_count, settings_refused
from vlab.log.files import holds_events, new_run_dir
from vlab.log.records import EventRecord
from vlab.protocol_limits import EOU_TIMEOUT_MS, THRESHOLD_BOUNDS
from vlab.session.connect_errors import in_places
from vlab.session.tools import Handler, McpApprovalRequest, ToolRunner
from vlab.settings import (
    NOT_GIVEN,
    VOICE_EXAMPLES,
    AzureSemanticVad,
    EndOfUtterance,
    FunctionTool,
    McpServer,
    SemanticVariant,
    ServerVad,
    SessionSettings,
)
from vlab.widgets._audio_formats import audio_format_dropdown, audio_format_fields
from vlab.widgets._events import direction_arrow, event_detail
from vlab.widgets._tasks import guarded, start_task
from vlab.widgets.browser_audio import BrowserAudio, kernel_has_device
from vlab.widgets.latency_line import LatencyLine
from vlab.widgets.level_meter import LevelMeter, MeteredMicrophone

if TYPE_CHECKING:
    import pandas as pd

EMULATOR = "Embedded emulator"
AZURE = "Azure endpoint"
WAV_PROMPT = "WAV prompt"
UPLOADED_FILE = "Uploaded file"
BROWSER_MIC = "Browser microphone"
KERNEL_MIC = "Microphone"
_LIVE = (BROWSER_MIC, KERNEL_MIC)
_ENTRA_ID = object()
"""The credential the form asks for with Auth Entra ID: ``DefaultAzureCredential``, made and closed by the run."""
_BOXES = {
    ENV_ENDPOINT: "the Endpoint box",
    "the endpoint argument": "the Endpoint box",
    ENV_API_KEY: "the API key box (Auth: API key)",
    "the api_key argument": "the API key box",
}
"""Where an error names a setting's variable or argument → the box of the form that sets it (Azure target)."""
TURN_TYPES = {
    "server_vad": "Server VAD",
    "azure_semantic_vad": "Azure semantic VAD",
    "azure_semantic_vad_en": "Azure semantic VAD (en)",
    "azure_semantic_vad_multilingual": "Azure semantic VAD (multilingual)",
    "manual": "Manual (no turn detection)",
}
_HIDDEN_EVENTS = {
    protocol.AUDIO_DELTA,
    protocol.CLIENT_APPEND,
    protocol.AUDIO_TRANSCRIPT_DELTA,
    protocol.TEXT_DELTA,
    protocol.FUNCTION_CALL_ARGUMENTS_DELTA,
    protocol.MCP_CALL_ARGUMENTS_DELTA,
}
_SHOWN_ARGUMENTS = 300
"""Characters of a call's arguments shown in an approval request."""


def find_prompt_dir() -> Path | None:
    """A ``data/prompts`` folder from the current folder up, else vlab's bundled prompt set."""
    here = Path.cwd().resolve()
    for base in (here, *here.parents):
        candidate = base / "data" / "prompts"
        if candidate.is_dir():
            return candidate
    bundled = bundled_dir("prompts")
    return bundled if bundled.is_dir() else None


def list_prompts(prompt_dir: Path | None) -> list[tuple[str, str]]:
    """(label, path) of every audio prompt under ``prompt_dir``."""
    if prompt_dir is None:
        return []
    files = sorted(p for p in prompt_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    return [(str(p.relative_to(prompt_dir)), str(p)) for p in files]


class SessionPanel:
    """A form to configure a session, Start/Stop buttons, a live status line, level meter and event table.

    Every run is logged to its own run folder under ``runs_dir``. Display it with ``panel`` as the last
    expression of a cell (or ``display(panel.widget)``).

    Args:
        runs_dir: Parent folder of the run folders.
        prompt_dir: Where to list WAV prompts (default: ``data/prompts`` from the current folder up, else
            the bundled set).
        max_rows: Events shown in the live table.
        emulator_options: Options for the embedded emulator (e.g. ``{"speed": 4.0}``).
        replay_speed: Pacing of WAV prompts (1 = real time; ``math.inf`` = as fast as possible).
        session_options: Extra keywords for :class:`vlab.Session` (e.g. ``dotenv_path=False``).
        keep_open: After a prompt is answered, keep the session open: Start ("Send prompt") sends the
            next prompt as another turn, Stop ends it. False ends the session after the answer.
        source: The input chosen at first: ``"WAV prompt"``, ``"Uploaded file"``, ``"Browser
            microphone"`` or ``"Microphone"`` (the kernel's). Default: the browser microphone when the
            kernel has no input device (a remote kernel), else a WAV prompt.
        tools: Function tools and MCP servers the session offers the model (the form can add one MCP
            server more).
        tool_handlers: The code of each function tool, by name (see :class:`vlab.session.ToolRunner`):
            a call runs it, and its result is spoken. An MCP call that needs approval shows Approve and
            Decline buttons.

    With manual turns (no turn detection) and a microphone, End turn ends each of the user's turns
    (push-to-talk: :meth:`end_user_turn`).

    Raises:
        ConfigError: ``max_rows`` below 1, or a ``replay_speed`` that is not > 0 (or ``"max"``).
    """

    def __init__(
        self,
        *,
        runs_dir: str | Path = "runs",
        prompt_dir: str | Path | None = None,
        max_rows: int = 12,
        emulator_options: dict[str, Any] | None = None,
        replay_speed: float = 1.0,
        session_options: dict[str, Any] | None = None,
        keep_open: bool = True,
        source: str | None = None,
        tools: Sequence[FunctionTool | McpServer] = (),
        tool_handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self._initial_source = source
        self.tools = tuple(tools)
        self.tool_handlers = dict(tool_handlers or {})
        self.runner: ToolRunner | None = None
        """Answers the running session's tool calls (None when it offers no tools)."""
        self.awaiting_approval = asyncio.Event()
        """Set while an MCP call waits for its Approve or Decline button."""
        self.runs_dir = Path(runs_dir)
        self._held: dict[widgets.Widget, bool] = {}
        """The form's fields disabled while a session is open, with whether each was disabled before."""
        self.prompt_dir = Path(prompt_dir) if prompt_dir is not None else find_prompt_dir()
        if self.prompt_dir is not None and not self.prompt_dir.is_dir():
            raise ConfigError(
                f"prompt_dir {str(self.prompt_dir)!r} is not a folder; give the folder of your WAV prompts, or "
                "leave it out for data/prompts (or vlab's bundled prompts)"
            )
        check_count("max_rows", max_rows)
        self.max_rows = max_rows
        self.emulator_options = dict(emulator_options or {})
        self.replay_speed = parse_speed(replay_speed)
        self.session_options = dict(session_options or {})
        self.session: Any = None
        self.run_dir: Path | None = None
        self.task: asyncio.Task[Any] | None = None
        self._secrets: dict[str, Secret] = {}
        """What was pasted into the password boxes, by what it is (``"key"``, ``"token"``)."""
        self._asking: list[str] = []  # the tools whose calls wait for a button, in the order asked
        self._t0_ns = 0
        self._rows: deque[EventRecord] = deque(maxlen=max_rows)  # the table's records (none hidden)
        self._rendered = -1  # records logged when the table was last rendered
        self._stopping = False
        self.error: BaseException | None = None
        """Why the last session failed (None: it did not), shown in the status line."""
        self.keep_open = keep_open
        self.answered = asyncio.Event()
        """Set when the last prompt sent has been answered."""
        self.connected = asyncio.Event()
        """Set while a session is connected (cleared when it ends)."""
        self._pending: asyncio.Queue[_Prompt] = asyncio.Queue()
        self._build()

    # --- layout ------------------------------------------------------------------------------------

    def _build(self) -> None:
        """Make the controls and lay them out: the form, and the live view beside it (below it when narrow)."""
        style = {"description_width": "120px"}
        buttons = {"description_width": "120px", "button_width": "160px"}
        wide = widgets.Layout(width="440px")
        self._build_session_controls(style, buttons, wide)
        self._build_turn_detection(style, wide)
        self._build_audio_controls(style, buttons, wide)
        self._build_live_view(style)
        self.azure_box = widgets.VBox([self.endpoint, self.auth, self.api_key])
        self.mcp_box = widgets.VBox([self.mcp_label, self.mcp_approval, self.mcp_token])
        self.semantic_box = widgets.VBox([self.remove_fillers])
        self.vad_box = widgets.VBox(
            [self.threshold, self.prefix_padding, self.silence, self.semantic_box, self.eou, self.eou_timeout]
        )
        self.prompt_box = widgets.VBox([self.prompt])
        self.upload_box = widgets.VBox([self.upload])
        self.browser_box = widgets.VBox([self.browser_audio])
        form = widgets.VBox([
            self.target, self.azure_box, self.model, self.voice, self.instructions, self.audio_format,
            self.tools_note, self.mcp_url, self.mcp_box,
            self.turn_type, self.vad_box, self.source, self.prompt_box, self.upload_box,
            self.speaker, self.speaker_side, self.browser_box, self.sound_where, self.barge_in,
        ])  # fmt: skip
        form.layout = widgets.Layout(width="470px", flex="0 0 auto", overflow="visible")
        live = widgets.VBox(
            [
                widgets.HBox([self.start, self.stop, self.end_turn]),
                self.status,
                self.approvals,
                self.level,
                self.latency,
                self.table,
            ],
            layout=widgets.Layout(flex="1 1 380px", min_width="380px"),
        )
        columns = widgets.HBox(
            [form, live], layout=widgets.Layout(flex_flow="row wrap")
        )  # live view wraps below when narrow
        self.widget = widgets.VBox([columns, self.output])
        self._observe_controls()

    def _build_session_controls(
        self, style: dict[str, str], buttons: dict[str, str], wide: widgets.Layout
    ) -> None:
        """Where to connect and how, the model, voice, instructions, audio format, tools and MCP server."""
        self.target = widgets.ToggleButtons(
            options=[EMULATOR, AZURE], value=EMULATOR, description="Target", style=buttons
        )
        self.endpoint = widgets.Text(
            description="Endpoint",
            placeholder="https://<resource>.services.ai.azure.com",
            style=style,
            layout=wide,
        )
        self.auth = widgets.ToggleButtons(
            options=["API key", "Entra ID"], value="API key", description="Auth", style=buttons
        )
        self.api_key = widgets.Password(
            description="API key",
            placeholder="paste the key (it is not kept in the notebook)",
            style=style,
            layout=wide,
        )
        self.model = widgets.Text(value=protocol.DEFAULT_MODEL, description="Model", style=style, layout=wide)
        self.voice = widgets.Combobox(
            value="", placeholder="service default", options=list(VOICE_EXAMPLES),
            description="Voice", style=style, layout=wide,
        )  # fmt: skip
        self.instructions = widgets.Textarea(
            value="You are a helpful assistant.", description="Instructions", style=style, layout=wide
        )
        self.tools_note = widgets.HTML(_describe_tools(self.tools))
        self.mcp_url = widgets.Text(
            description="MCP server",
            placeholder="https://<server>/mcp (optional: its tools are offered)",
            style=style,
            layout=wide,
        )
        self.mcp_label = widgets.Text(value="mcp", description="Server label", style=style, layout=wide)
        self.mcp_approval = widgets.ToggleButtons(
            options=[("Ask me", "always"), ("Run without asking", "never")],
            value="always",
            description="MCP calls",
            style=buttons,
        )
        self.mcp_token = widgets.Password(
            description="Bearer token",
            placeholder="optional (it is not kept in the notebook)",
            style=style,
            layout=wide,
        )
        self.audio_format = audio_format_dropdown(style, wide)

    def _build_turn_detection(self, style: dict[str, str], wide: widgets.Layout) -> None:
        """The turn detection's type, the VAD's sliders and end-of-utterance detection."""
        self.turn_type = widgets.Dropdown(
            options=[(v, k) for k, v in TURN_TYPES.items()],
            value="server_vad",
            description="Turn detection",
            style=style,
            layout=wide,  # its longest label, "Azure semantic VAD (multilingual)", shows whole
        )
        default = ServerVad()  # the sliders start at vlab's (the service's) server VAD defaults
        self.threshold = widgets.FloatSlider(
            value=default.threshold, min=THRESHOLD_BOUNDS.lo, max=THRESHOLD_BOUNDS.hi, step=0.05,
            description="Threshold", style=style,
        )  # fmt: skip
        self.prefix_padding = widgets.IntSlider(
            value=default.prefix_padding_ms, min=0, max=1000, step=20, description="Prefix padding ms", style=style,
        )  # fmt: skip
        self.silence = widgets.IntSlider(
            value=default.silence_duration_ms, min=100, max=2000, step=50, description="Silence ms", style=style,
        )  # fmt: skip
        self.remove_fillers = widgets.Checkbox(
            value=False, description="Remove filler words (semantic VAD)", layout=wide
        )
        self.eou = widgets.Checkbox(
            value=False,
            description="End-of-utterance detection",
            tooltip="Semantic end-of-utterance detection: after a pause, wait for more when the words so far "
            "sound unfinished",
            layout=wide,
        )
        self.eou_timeout = widgets.IntSlider(
            value=EOU_TIMEOUT_MS, min=0, max=3000, step=100, description="EOU timeout ms", style=style,
        )  # fmt: skip
        """The longest wait for more speech after a pause judged unfinished (shown with :attr:`eou`)."""

    def _build_audio_controls(
        self, style: dict[str, str], buttons: dict[str, str], wide: widgets.Layout
    ) -> None:
        """Where the user's audio comes from, where the assistant is heard, and barge-in."""
        prompts = list_prompts(self.prompt_dir)
        kernel_in, kernel_out = kernel_has_device("input"), kernel_has_device("output")
        sources = [WAV_PROMPT, UPLOADED_FILE, BROWSER_MIC, KERNEL_MIC]
        initial = self._initial_source or (WAV_PROMPT if kernel_in else BROWSER_MIC)
        if initial not in sources:
            raise ConfigError(f"source must be one of {', '.join(map(repr, sources))}, got {initial!r}")
        self.source = widgets.ToggleButtons(
            options=[
                (WAV_PROMPT, WAV_PROMPT),
                (UPLOADED_FILE, UPLOADED_FILE),
                (BROWSER_MIC, BROWSER_MIC),
                ("Kernel microphone" if kernel_in else "Kernel microphone (none found)", KERNEL_MIC),
            ],
            value=initial,
            description="Input",
            style={"description_width": "120px", "button_width": "150px"},
        )
        preferred = next(
            (v for label, v in prompts if label.startswith("short_question")),
            prompts[0][1] if prompts else "",
        )
        self.prompt = widgets.Dropdown(
            options=prompts or [(f"(no prompts found in {self._prompt_place()})", "")],
            value=preferred,
            description="Prompt",
            style=style,
            layout=wide,
        )
        self.upload = widgets.FileUpload(
            accept=",".join(AUDIO_SUFFIXES), multiple=False, description="Upload"
        )
        self.speaker = widgets.Checkbox(
            value=False, description="Play the assistant on the speaker", layout=wide
        )
        self.speaker_side = widgets.ToggleButtons(
            options=[("This browser", "browser"), ("Kernel machine", "kernel")],
            value="kernel" if kernel_out else "browser",
            description="Speaker on",
            style=buttons,
        )
        self.browser_audio = BrowserAudio()
        """The page's microphone and speaker (shown when a browser side is chosen)."""
        self.sound_where = widgets.HTML("")
        self.barge_in = widgets.Dropdown(
            options=[("on", "on"), ("truncate only", "truncate_only"), ("off", "off")],
            value="on",
            description="Barge-in",
            style=style,
        )

    def _build_live_view(self, style: dict[str, str]) -> None:
        """The buttons, status, approvals, input level, latency line, event table and output."""
        self.start = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.end_turn = widgets.Button(
            description="End turn",
            button_style="primary",
            icon="paper-plane",
            tooltip="Manual turns: commit what you said and ask for the answer (push-to-talk)",
            disabled=True,
        )
        """Manual turns from a microphone: ends the user's turn (shown only then, enabled while listening)."""
        self.status = widgets.HTML("<i>idle</i>")
        self.approvals = widgets.VBox([])
        """One row (the call, Approve, Decline) per MCP call waiting for approval."""
        self.level = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="Input level", style=style
        )
        self._meter = LevelMeter(self.level)
        self.table = widgets.HTML("")
        self.output = widgets.Output()
        self._latency_line = LatencyLine(self._session_frame, self.output)
        self.latency = self._latency_line.widget

    def _observe_controls(self) -> None:
        """Wire each control: a change of what is shown, the secrets taken out of their boxes, the buttons."""
        self.target.observe(
            guarded(self.output, "Changing the target")(lambda _: self._sync_visibility()), names="value"
        )
        self.auth.observe(
            guarded(self.output, "Changing the auth")(lambda _: self._sync_visibility()), names="value"
        )
        self.turn_type.observe(
            guarded(self.output, "Changing turn detection")(lambda _: self._sync_visibility()), names="value"
        )
        for control, what in ((self.source, "Changing the input"), (self.speaker, "Changing the speaker"),
                              (self.speaker_side, "Changing the speaker side"),
                              (self.mcp_url, "Changing the MCP server"),
                              (self.eou, "Changing end-of-utterance detection")):  # fmt: skip
            control.observe(guarded(self.output, what)(lambda _: self._sync_visibility()), names="value")
        for box, what in ((self.api_key, "key"), (self.mcp_token, "token")):
            box.observe(guarded(self.output, f"Setting the {what}")(self._taker(box, what)), names="value")
        self.start.on_click(guarded(self.output, "Start")(lambda _: self.start_session()))
        self.stop.on_click(guarded(self.output, "Stop")(lambda _: self.stop_session()))
        self.end_turn.on_click(guarded(self.output, "End turn")(lambda _: self.end_user_turn()))
        self._sync_visibility()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"SessionPanel(target={self.target.value!r}, running={self.running})"

    def _sync_visibility(self) -> None:
        show = lambda box, on: setattr(box.layout, "display", None if on else "none")  # noqa: E731
        show(self.azure_box, self.target.value == AZURE)
        self.api_key.layout.display = None if self.auth.value == "API key" else "none"
        show(self.vad_box, self.turn_type.value != "manual")
        show(self.mcp_box, bool(self.mcp_url.value.strip()))
        show(self.semantic_box, self.turn_type.value.startswith("azure_semantic"))
        show(self.eou_timeout, self.eou.value)
        show(self.prompt_box, self.source.value == WAV_PROMPT)
        show(self.upload_box, self.source.value == UPLOADED_FILE)
        show(self.end_turn, self.source.value in _LIVE and self.turn_type.value == "manual")
        show(self.speaker_side, self.speaker.value)
        browser_out = self.speaker.value and self.speaker_side.value == "browser"
        show(self.browser_box, self.source.value == BROWSER_MIC or browser_out)
        mic = {BROWSER_MIC: "this browser", KERNEL_MIC: "the kernel machine"}.get(self.source.value, "a file")
        out = (
            "not played"
            if not self.speaker.value
            else "this browser"
            if browser_out
            else "the kernel machine"
        )
        self.sound_where.value = (
            f"<small>Sound: input from <b>{mic}</b> · assistant audio: <b>{out}</b></small>"
        )

    def _taker(self, box: widgets.Password, what: str) -> Callable[[dict[str, Any]], None]:
        """Moves what is pasted into ``box`` into a Secret kept as ``what`` (a widget's value is saved)."""

        def take(change: dict[str, Any]) -> None:
            if change["new"]:
                self._secrets[what] = Secret(change["new"])
                box.value = ""
                box.placeholder = f"{what} set (hidden); paste again to replace"

        return take

    # --- settings ------------------------------------------------------------------------------------

    def mcp_server(self) -> McpServer | None:
        """The MCP server the form names (None when its URL is empty; ConfigError for invalid values)."""
        url = self.mcp_url.value.strip()
        if not url:
            return None
        return McpServer(
            self.mcp_label.value.strip(),
            url,
            require_approval=self.mcp_approval.value,
            authorization=self._secrets["token"].reveal() if "token" in self._secrets else None,
        )

    def settings(self) -> SessionSettings:
        """The session settings the form describes (raises ConfigError for invalid values)."""
        kind = self.turn_type.value
        common = {
            "threshold": self.threshold.value,
            "prefix_padding_ms": self.prefix_padding.value,
            "silence_duration_ms": self.silence.value,
            "end_of_utterance": (
                EndOfUtterance(timeout_ms=self.eou_timeout.value) if self.eou.value else NOT_GIVEN
            ),
        }
        if kind == "manual":
            td: Any = None
        elif kind == "server_vad":
            td = ServerVad(**common)
        else:
            variants: dict[str, SemanticVariant] = {
                "azure_semantic_vad": "default",
                "azure_semantic_vad_en": "en",
                "azure_semantic_vad_multilingual": "multilingual",
            }
            td = AzureSemanticVad(
                variant=variants[kind], remove_filler_words=self.remove_fillers.value, **common
            )
        server = self.mcp_server()
        return SessionSettings(
            model=self.model.value.strip() or protocol.DEFAULT_MODEL,
            instructions=self.instructions.value,
            voice=self.voice.value.strip() or NOT_GIVEN,
            turn_detection=td,
            tools=(*self.tools, *([server] if server is not None else [])),
            **audio_format_fields(self.audio_format.value),
        )

    def _session_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(self.session_options)
        if self.target.value == AZURE:
            from vlab.errors import ConfigError

            if not self.endpoint.value.strip():
                raise ConfigError(
                    "Enter the Azure endpoint (https://<resource>.services.ai.azure.com) or choose the embedded emulator."
                )
            self._clear_a_key_from_the_endpoint()
            kwargs["endpoint"] = self.endpoint.value.strip()
            if self.auth.value == "API key":
                if "key" not in self._secrets:
                    raise ConfigError(
                        "Paste the resource's API key, or choose Entra ID to sign in with `az login`."
                    )
                kwargs["api_key"] = self._secrets["key"].reveal()
            else:  # Entra ID, as chosen: never a key the environment or .env holds
                kwargs.setdefault("credential", _ENTRA_ID)
        else:
            kwargs.setdefault("dotenv_path", False)
            kwargs["emulator_options"] = self.emulator_options
            kwargs["endpoint"] = None
        kwargs["model"] = self.model.value.strip() or None
        kwargs["barge_in"] = self.barge_in.value
        return kwargs

    def _prompt_place(self) -> str:
        """Where the panel lists its prompts, as its messages name it."""
        return str(self.prompt_dir) if self.prompt_dir is not None else "data/prompts"

    def _clear_a_key_from_the_endpoint(self) -> None:
        """Empty the Endpoint box when it holds a key (the API key, an api-key query, or no host at all).

        Its value is widget state, which the notebook saves: a key pasted there must not stay.

        Raises:
            ConfigError: The box was emptied; the message says why (the key itself is not shown).
        """
        from vlab.errors import ConfigError

        value = self.endpoint.value.strip()
        key = self._secrets["key"].reveal() if "key" in self._secrets else None
        holds_key = (key is not None and key in value) or "api-key=" in value.lower()
        if holds_key or ("://" not in value and "." not in value):  # no host: a key pasted in the wrong box
            self.endpoint.value = ""
            raise ConfigError(
                "The Endpoint box held an API key or no address, and was emptied (it is saved with the notebook). "
                "Enter the resource's endpoint, https://<resource>.services.ai.azure.com, and the key in the API "
                "key box."
            )

    # --- running -----------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a session is running."""
        return self.task is not None and not self.task.done()

    def start_session(self) -> asyncio.Task[Any] | None:
        """Start a session with the form's settings and send the chosen input (returns the session's task).

        While a session stays open (``keep_open``), pressing Start again sends the selected prompt as
        the next user turn of the same session.
        """
        if self.running:
            if self.session is not None and self.source.value not in _LIVE:
                self.answered.clear()
                self._pending.put_nowait(self._input_audio(self.session.settings))
            return self.task
        settings = self.settings()
        kwargs = self._session_kwargs()
        prompt = self._input_audio(settings) if self.source.value not in _LIVE else None
        self.run_dir = new_run_dir("panel", self.runs_dir)
        self.start.disabled, self.stop.disabled = True, False
        self._hold_the_form()
        self.answered.clear()
        self.table.value = self.latency.value = ""
        self._pending = asyncio.Queue()
        if prompt is not None:
            self._pending.put_nowait(prompt)
        self._set_status("connecting…")
        self.error = None
        self.task = start_task(
            lambda: self._run(settings, kwargs),
            self.output,
            what="The session",
            on_done=self._finished,
        )
        return self.task

    def stop_session(self) -> None:
        """Stop the running session (the run folder is completed)."""
        if self.running and self.task is not None:
            self._stopping = True
            self.task.cancel()
            self._set_status("stopping…")

    def end_user_turn(self) -> asyncio.Task[Any] | None:
        """Manual turns from a microphone (push-to-talk): commit what was said and ask for the answer.

        A reply still playing was spoken over: it is interrupted first (:meth:`vlab.Session.interrupt`).
        Returns the task that sends the events, or None when no microphone is listening.
        """
        session = self.session
        if session is None or self.end_turn.disabled:
            return None

        async def commit() -> None:
            await session.interrupt()  # spoken over the assistant: its reply stops, as at a barge-in
            await session.commit()
            await session.create_response()
            self._set_status(
                "turn ended, answer asked for — speak again, then End turn; Stop ends the session"
            )

        return start_task(commit, self.output, what="Ending the turn")

    def _hold_the_form(self) -> None:
        """Disable the fields the open session was made of: a change there would not reach it.

        The prompt and the upload stay free, for the next turn of a session kept open.
        """
        fields = (
            self.target, self.endpoint, self.auth, self.api_key, self.model, self.voice, self.instructions,
            self.audio_format, self.mcp_url, self.mcp_label, self.mcp_approval, self.mcp_token,
            self.turn_type, self.threshold, self.prefix_padding, self.silence, self.remove_fillers, self.eou,
            self.eou_timeout, self.source, self.speaker, self.speaker_side, self.barge_in,
        )  # fmt: skip
        self._held = {field: field.disabled for field in fields}
        for field in fields:
            field.disabled = True

    def _finished(self) -> None:
        for field, disabled in self._held.items():  # as they were before the session
            field.disabled = disabled
        self._held = {}
        self.start.disabled, self.stop.disabled = False, True
        self.end_turn.disabled = True
        self.start.description = "Start"
        self._meter.reset()
        state = "stopped" if self._stopping else "finished"
        self._stopping = False
        logged = self.run_dir is not None and holds_events(
            self.run_dir
        )  # not one a failed connect left empty
        where = f" — run folder <code>{html.escape(str(self.run_dir))}</code>" if logged else ""
        if self.error is not None:  # one readable line, e.g. the sign-in or role to fix
            failed = f'<span style="color:#b00020">failed: {html.escape(str(self.error))}</span>'
            self._set_status(f"{failed}{where}")
            return
        self._set_status(f"{state}{where}")

    def _input_audio(self, settings: SessionSettings) -> _Prompt:
        """The chosen prompt's audio at the session's rate, and its labelled ends of speech if it has any."""
        from vlab.audio.wav import load_wav
        from vlab.errors import ConfigError
        from vlab.prompts import labelled_file

        rate = settings.input_sample_rate
        if self.source.value == WAV_PROMPT:
            if not self.prompt.value:
                raise ConfigError(
                    f"No prompt selected: put WAV files in {self._prompt_place()} or choose another input."
                )
            labelled = labelled_file(self.prompt.value)
            return _Prompt(
                load_wav(self.prompt.value, rate, trail_ms=1500),
                labelled.end_of_turn_ms if labelled is not None else None,
            )
        files = self.upload.value
        if not files:
            raise ConfigError(
                f"Upload a {AUDIO_KINDS} file first (the Upload button), or choose another input."
            )
        upload = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        path = self.runs_dir / "uploads" / Path(str(upload["name"])).name  # a name, never a path out of it
        path.parent.mkdir(parents=True, exist_ok=True)
        content = upload["content"]
        path.write_bytes(content.tobytes() if hasattr(content, "tobytes") else bytes(content))
        return _Prompt(load_wav(path, rate, trail_ms=1500), None)

    async def wait_answered(self, timeout_s: float = 120.0) -> None:
        """Wait until the last prompt sent has been answered (for notebooks and tests).

        The timeout runs on the sessions' clock (``session_options["clock"]``, else the system's).

        Raises:
            TimeoutError: Not answered within ``timeout_s``.
        """
        from vlab.clock import NS_PER_S, SystemClock, wait_until_ns

        clock = self.session_options.get("clock") or SystemClock()
        deadline_ns = clock.monotonic_ns() + int(timeout_s * NS_PER_S)
        await wait_until_ns(clock, self.answered.wait(), deadline_ns)

    async def _run(self, settings: SessionSettings, kwargs: dict[str, Any]) -> None:
        from vlab.feed import SPEECH_NEVER_ENDED, speech_never_ended
        from vlab.session import Session

        speaker = None
        if self.speaker.value and self.speaker_side.value == "browser":
            kwargs["audio_output"] = self.browser_audio.speaker
        elif self.speaker.value:
            from vlab.audio.devices import Speaker

            speaker = Speaker(sample_rate=settings.output_sample_rate)
            kwargs["audio_output"] = speaker
        self._rows.clear()
        self._latency_line.reset()
        self._rendered = -1
        made_credential = None
        if kwargs.get("credential") is _ENTRA_ID:
            from azure.identity.aio import DefaultAzureCredential

            kwargs["credential"] = made_credential = DefaultAzureCredential()
        session = Session(settings, run_dir=self.run_dir, sinks=[self._on_record], **kwargs)
        self.session = session
        self._t0_ns = session.clock.monotonic_ns()  # the clock its records are stamped on
        refresher = asyncio.get_event_loop().create_task(self._refresh_loop())
        try:
            async with session, self._tool_runner(session, settings) as runner:
                self.connected.set()
                self._set_status(f"connected to {html.escape(session.target.describe())}")
                if self.source.value in _LIVE and self._pending.empty():
                    await self._stream_microphone(session, settings)
                    return
                while True:
                    prompt = await self._pending.get()
                    since = len(session.records)
                    await self._feed(session, prompt, settings)
                    if speech_never_ended(session, since):  # it said "finished", with no word of why
                        raise ConfigError(f"{SPEECH_NEVER_ENDED} (threshold {self.threshold.value:g})")
                    if runner is not None and not runner.idle:
                        self._set_status("answering the tool calls…")
                        await runner.settled()
                    self.answered.set()
                    if not self.keep_open:
                        return
                    self.start.disabled = False
                    self.start.description = "Send prompt"
                    self._set_status("answered — <b>Send prompt</b> for another turn, or <b>Stop</b>")
        except VlabError as exc:  # kept for the status line (one readable line); the output area shows it too
            if kwargs.get("endpoint") is not None:  # the form's boxes, not the variables, set the target
                exc.args = (in_places(str(exc), _BOXES),)
            self.error = exc
            raise
        finally:
            if self.error is None and session.settings_refused is not None:  # it ran, on the server's own
                self.error = settings_refused(session.settings_refused, "this session's events")
            if self.error is None and any(r.type == protocol.MCP_LIST_TOOLS_FAILED for r in session.records):
                self.error = ConfigError(  # it said "finished": the server's tools were never offered
                    f"the service could not list the tools of the MCP server {self.mcp_url.value.strip()!r} "
                    "(mcp_list_tools.failed), so none of them was offered; check its URL and that it answers"
                )
            self.runner = None
            self.connected.clear()
            refresher.cancel()
            self._refresh()
            if speaker is not None:
                speaker.close()
            if made_credential is not None:
                await made_credential.close()

    def _tool_runner(
        self, session: Any, settings: SessionSettings
    ) -> AbstractAsyncContextManager[ToolRunner | None]:
        """A runner answering the session's tool calls, or nothing when it offers no tools."""
        if not settings.tools:
            return contextlib.nullcontext(None)
        handlers = {name: self._announced(handler) for name, handler in self.tool_handlers.items()}
        self.runner = ToolRunner(session, handlers, approve=self._ask_approval)
        return self.runner

    def _announced(self, handler: Handler) -> Handler:
        """``handler``, with the status line saying that the turn waits for it while it runs."""

        async def run(**arguments: Any) -> Any:
            self._set_status("answering the tool calls…")
            result = handler(**arguments)
            return await result if inspect.isawaitable(result) else result

        return run

    async def _ask_approval(self, request: McpApprovalRequest) -> bool:
        """Show the call with Approve and Decline buttons, and wait for one to be pressed."""
        decided: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        shown = request.arguments
        if len(shown) > _SHOWN_ARGUMENTS:
            shown = shown[:_SHOWN_ARGUMENTS] + "…"
        text = widgets.HTML(
            f"<b>{html.escape(request.server_label)}</b> asks to run "
            f"<code>{html.escape(request.name)}({html.escape(shown)})</code>"
        )
        fits = widgets.Layout(width="auto")
        approve = widgets.Button(description="Approve", button_style="success", icon="check", layout=fits)
        decline = widgets.Button(description="Decline", button_style="warning", icon="times", layout=fits)

        def answer(approved: bool) -> None:
            if not decided.done():
                decided.set_result(approved)

        approve.on_click(lambda _: answer(True))
        decline.on_click(lambda _: answer(False))
        row = widgets.VBox(
            [text, widgets.HBox([approve, decline])],
            layout=widgets.Layout(border="1px solid #e0a800", padding="4px", margin="4px 0"),
        )
        self.approvals.children = (*self.approvals.children, row)
        self._asking.append(request.name)
        self.awaiting_approval.set()
        self._set_status("")
        try:
            return await decided
        finally:
            self.approvals.children = tuple(c for c in self.approvals.children if c is not row)
            self._asking.remove(request.name)
            if not self._asking:
                self.awaiting_approval.clear()
            self._set_status("answering the tool calls…")

    async def _feed(self, session: Any, prompt: _Prompt, settings: SessionSettings) -> None:
        """Send a prompt, paced and metered, and wait for its answer (on the emulator's timeline there).

        The run folder keeps the labels of the prompts sent (``labels.json``) while every one has them.
        """
        from vlab.audio.pacing import paced_chunks
        from vlab.feed import feed_prompt
        from vlab.prompts import write_run_labels

        rate = settings.input_sample_rate
        prompt_sent = False

        async def send(pcm: bytes) -> None:  # the prompt; then the user's silence while calls are answered
            nonlocal prompt_sent
            if not prompt_sent:
                self._set_status("sending the prompt…")
                await self._latency_line.note_prompt(
                    pcm, settings, start_ms=session.input_ms, end_of_turn_ms=prompt.end_of_turn_ms
                )
                labelled = self._latency_line.end_of_turn_ms
                if self.run_dir is not None:
                    write_run_labels(self.run_dir, {"end_of_turn_ms": labelled} if labelled else None)
            self._meter.reset(rate)
            async for chunk, _ in paced_chunks(pcm, sample_rate=rate, speed=self.replay_speed):
                self._meter(chunk)
                await session.append_audio(g711.from_pcm16(chunk, settings.input_audio_format))
            self._meter.reset()
            if not prompt_sent:
                self._set_status("waiting for the answer…")
            prompt_sent = True

        self.start.disabled = True
        await feed_prompt(
            session,
            prompt.pcm,
            speed=self.replay_speed,
            timeout_s=120.0,
            commit=settings.turn_detection is None,
            send=send,
            tools=self.runner,  # on the emulator's timeline, each answer where its call ended
        )

    async def _stream_microphone(self, session: Any, settings: SessionSettings) -> None:
        rate = settings.input_sample_rate
        mic: Any
        if self.source.value == BROWSER_MIC:
            from vlab.audio.browser import STATE_MESSAGES
            from vlab.errors import DeviceError

            if not await self.browser_audio.wait_for_page():
                raise DeviceError(f"browser microphone: {STATE_MESSAGES['no_frontend']}")
            mic = self.browser_audio.microphone(rate)
        else:
            from vlab.audio.devices import Microphone

            mic = Microphone(sample_rate=rate)
        if settings.turn_detection is None:  # push-to-talk: the user ends each turn
            self._set_status("listening — speak, then End turn; Stop ends the session")
            self.end_turn.disabled = False
        else:
            self._set_status("listening — speak, then press Stop")
        self._meter.reset(rate)
        keep = self._latency_line.keep_microphone(settings, start_ms=session.input_ms)  # it follows on
        async with mic:
            await session.stream_microphone(MeteredMicrophone(mic, self._meter, keep))

    # --- live views ------------------------------------------------------------------------------------

    def _on_record(self, record: EventRecord) -> None:
        if record.type not in _HIDDEN_EVENTS:
            self._rows.append(record)
        if record.type == protocol.RESPONSE_DONE:
            self._latency_line.update()

    def _session_frame(self) -> pd.DataFrame | None:
        """The session's events so far (None: no session, or nothing logged yet)."""
        session = self.session
        return session.frame() if session is not None and session.records else None

    async def _refresh_loop(self) -> None:
        while True:
            self._refresh()
            await asyncio.sleep(0.25)

    def _refresh(self) -> None:
        session = self.session
        if session is None:
            return
        total = len(session.records)
        if total != self._rendered:  # a new render only when something was logged (it goes to the page)
            self._rendered = total
            self.table.value = render_event_table(list(self._rows), self._t0_ns, total=total)

    def _set_status(self, text: str) -> None:
        """Show ``text`` on the status line; while approvals wait, the line keeps asking for them."""
        if self._asking:
            first, more = html.escape(self._asking[0]), len(self._asking) - 1
            text = f"waiting for your approval of <code>{first}</code>" + (
                f" (and {more} more)" if more else ""
            )
        self.status.value = f"<b>Status:</b> {text}"


class _Prompt(NamedTuple):
    """A prompt the panel sends: its audio at the session's rate, and its labelled ends of speech (if any)."""

    pcm: bytes
    end_of_turn_ms: tuple[float, ...] | None


def _describe_tools(tools: Sequence[FunctionTool | McpServer]) -> str:
    """The tools given to the panel, in one line of HTML (empty when there are none)."""
    if not tools:
        return ""
    names = [
        f"<code>{html.escape(t.name)}</code>"
        if isinstance(t, FunctionTool)
        else f"<code>{html.escape(t.server_label)}</code> (MCP)"
        for t in tools
    ]
    return f"<small>Tools: {', '.join(names)}</small>"


def render_event_table(rows: list[EventRecord], t0_ns: int, *, total: int) -> str:
    """HTML table of records with times relative to ``t0_ns``."""
    body = "".join(
        f"<tr><td style='text-align:right'>{(r.t_ns - t0_ns) / 1e6:,.0f}</td><td>{direction_arrow(r.direction)}</td>"
        f"<td>{html.escape(r.type)}</td><td>{html.escape(event_detail(r))}</td></tr>"
        for r in rows
    )
    return (
        f"<div style='font-size:12px'><b>Events</b> ({total} logged; deltas hidden)<table>"
        f"<tr><th>ms</th><th></th><th>type</th><th>detail</th></tr>{body}</table></div>"
    )

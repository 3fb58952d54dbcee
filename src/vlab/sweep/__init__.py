"""Settings sweeps: prompts × a grid of turn-detection settings × repeats, one run folder per cell.

``vlab sweep CONFIG.toml --out runs/NAME`` or :func:`run_sweep`. Each cell streams one labelled prompt
through a :class:`vlab.Session` (Azure, or the embedded emulator when no endpoint is configured) with
one setting, waits until the turns are answered, and writes its run folder
(``cells/<cell>/events.parquet`` …, plus ``cell.json`` with its status). When every cell has run, the
sweep writes ``turns.parquet`` (:func:`vlab.metrics.turn_latency` of every cell), ``vad.parquet``
(server detections), ``scores.parquet`` (:func:`vlab.metrics.score_prompt`, and the ``total_tokens``
the cell's responses used), ``points.parquet`` (:func:`vlab.metrics.operating_points`, in the grid's
order) and ``manifest.json`` (grid, prompts, versions, target kind,
times; never a key). The emulator's Silero probabilities are kept in ``vad_cache/`` beside the cells
(:mod:`vlab.audio.vad_cache`): every setting and repeat that plays a prompt reuses them, and so does a
resumed or repeated sweep. Every table is also a Parquet dataset with one partition per setting
(``dataset/<table>/setting_index=K/``), which :func:`load_sweep` reads as one table. Finished cells are skipped when the sweep is run again (resume); a failed cell
records its error and the sweep goes on. Cells the folder holds from another sweep (another grid, prompt
set or repeats) stay out of the tables, with a warning.

Config (TOML; see ``examples/vad_sweep.toml``)::

    [target]                 # optional; where the cells connect is not here: AZURE_VOICELIVE_ENDPOINT
                             # and its key in the environment or .env, else the embedded emulator
    speed = "max"            # audio pacing and emulator speed: a number (1 = real time) or "max"
    latency = "typical"      # emulator latency preset, or a fitted "latency.json" (vlab calibrate)
    hear_audio = false       # true: replies follow the words the emulator recognizes in each turn
                             # (true by default with [tools]: the emulator picks a tool by the words)
    script = "dialogue.json" # optional: the emulator's dialogue script (a chain of tool calls, say)
                             # (paths: relative to the folder vlab sweep runs in, or beside the config)
    [prompts]                # optional
    path = "data/prompts"    # a prompt folder with manifest.json (default: the bundled set)
    include = ["pause", "short_question"]   # ids or categories (default: all)
    [session]                # optional: what every setting's session also sends, alike (default: nothing;
                             # mode = "vad" opens no session: only the input audio keys change it)
    instructions = "Answer in one or two short sentences."   # the system prompt (the emulator reads how
                             # long a reply it asks for: "tell a story" makes each reply some 45 s)
    voice = "en-US-Ava:DragonHDLatestNeural"   # an Azure voice, an OpenAI one ("alloy"), or a table
    temperature = 0.8
    transcription = "azure-speech"   # the user's words transcribed into each cell's events
    input_audio_format = "g711_ulaw" # the audio the cells send: telephone audio (8 kHz), or "pcm16" and
    input_audio_sampling_rate = 8000 # … a rate (24000 by default); the prompts are resampled and encoded
    output_audio_format = "g711_ulaw"   # the audio the assistant sends (default "pcm16", at 24 kHz)
    [grid]                   # lists are crossed; scalars are fixed
    type = "server_vad"      # or "azure_semantic_vad", or both to compare them:
                             # type = ["server_vad", "azure_semantic_vad"]
    threshold = [0.5]
    prefix_padding_ms = [300]
    silence_duration_ms = [300, 500, 800]
    noise_reduction = ["off", "azure_deep_noise_suppression"]   # optional: input_audio_noise_reduction
    echo_cancellation = [false, true]                           # optional: input_audio_echo_cancellation
    eou_model = ["off", "semantic_detection_v1"]   # optional: end_of_utterance_detection ("off": none)
    eou_timeout_ms = [1000]                        # optional, with it: its timeout_ms …
    eou_threshold_level = ["default"]              # … and threshold_level (either alone implies the v1 model)
    model = ["gpt-realtime", "gpt-4.1"]                   # optional: the models to compare (default: the
                             # target's, AZURE_VOICELIVE_MODEL); the baseline and push-to-talk use the first
    voice = ["alloy", "en-US-Ava:DragonHDLatestNeural"]   # optional: the voices to compare (not also in
                             # [session]; the baseline and push-to-talk speak with the first)
    [tools.get_current_time] # optional: a function the model may call, one table each
    description = "Get the current time in a city"
    parameters = { type = "object", properties = { city = { type = "string" } } }   # JSON Schema
    output = "It is 9:41 am."   # what a cell answers every call with (a table is sent as JSON)
    run_ms = 400                # optional: how long the function runs on the emulator's timeline (0)
    [mcp.docs]               # optional: an MCP server the model may call, one table each (the label)
    server_url = "http://127.0.0.1:9000/mcp"     # the emulator (or the service) calls it itself
    allowed_tools = ["search"]                   # optional: only these of its tools (default: all)
    require_approval = "never"                   # or "always" (the default), or { never = [...] }
    approve = true           # what a cell answers its approval requests with (default: false, decline)
    authorization_env = "DOCS_MCP_TOKEN"         # optional: the environment variable with its token
    [run]                    # optional
    repeats = 1
    concurrency = 4
    timeout_s = 60
    baseline = true          # add the plain server VAD (0.5 / 300 / 500) as a baseline cell
    push_to_talk = false     # true: add "push-to-talk", a reference with no turn detection that commits
                             # each turn at its labelled end (the dead air of a perfect end-of-turn decision)
    canary = "short_question"
    throttle_retries = 5     # a cell the service throttles (HTTP 429) is retried this often …
    backoff_s = 2.0          # … after the service's Retry-After, else this wait, doubled each time
    executor = "asyncio"     # or "dask": cells run on a dask.distributed cluster (pip install vlab[dask])
    workers = 2              # dask: workers of the LocalCluster started for the sweep
    cluster = "tcp://host:8786"   # dask: an existing scheduler instead of a LocalCluster
    max_sessions = 8         # sessions open at once across the whole sweep (all workers)
    mode = "sessions"        # or "vad": the emulator's VAD decides each cell without a session (vlab.sweep.vad)

With ``mode = "vad"`` (or ``vlab sweep --mode vad``) each prompt's audio runs once through the emulator's
model and every setting's turn machine steps over the probabilities: the ``vad``, ``scores`` and
``points`` tables of a session sweep on the emulator, in about the time Silero takes over the audio, with
no cell folders and no ``turns`` (nothing is answered).

With ``push_to_talk = true`` each prompt is also played as a user holding a talk button would: no turn
detection, each labelled turn committed at its labelled end (:func:`vlab.sweep.cells.labelled_turns`), and
the next one sent once it is answered. It is scored as a perfect end-of-turn decision (no cut-off, dead
air from the commit), marked ``reference`` in ``points`` and left off the Pareto frontier: what is left
of a setting's dead air above it is what its end-of-turn decision costs.

With ``[tools]`` every setting offers the functions, and each cell answers the model's calls as a client
would (a :class:`~vlab.session.ToolRunner` that returns ``output``), then asks for the spoken answer.
With ``[mcp]`` every setting offers the MCP servers: each cell waits until they have listed their tools
(a server that cannot fails the cell, naming it), answers their approval requests with ``approve``, and
asks for the spoken answer once a call has returned. A token is read from the environment variable that
``authorization_env`` names, and is never written to the sweep folder.
``turns`` then shows, per turn, ``tool_calls`` and ``voice_to_answer_ms`` (end of speech → the answer's
first audio, through the calls), and ``dead_air_ms`` too runs to the answer, so ``scores`` and
``points`` count the user's whole wait; on the emulator these figures are the same at any speed, since a
call holds its simulated time until the answer comes (``docs/timeline.md``).
"""

from vlab.sweep.cells import CellResult, run_cell
from vlab.sweep.config import CONFIG_DEFAULTS, EXECUTORS, MODES, SESSION_FIELDS, SweepConfig, load_config
from vlab.sweep.grid import BASELINE, EOU_OFF, NOISE_REDUCTION_OFF, eou_label, grid_shape, in_grid_order
from vlab.sweep.run import SweepResult, run_sweep, run_sweep_async, sweep_warnings, target_summary
from vlab.sweep.store import DATASET_DIR, VAD_CACHE_DIR, load_sweep
from vlab.sweep.tables import aggregate
from vlab.sweep.tools import MCP_SECTION, TOOLS_SECTION

__all__ = [
    "BASELINE",
    "CONFIG_DEFAULTS",
    "DATASET_DIR",
    "EOU_OFF",
    "EXECUTORS",
    "MCP_SECTION",
    "MODES",
    "NOISE_REDUCTION_OFF",
    "SESSION_FIELDS",
    "TOOLS_SECTION",
    "VAD_CACHE_DIR",
    "CellResult",
    "SweepConfig",
    "SweepResult",
    "aggregate",
    "eou_label",
    "grid_shape",
    "in_grid_order",
    "load_config",
    "load_sweep",
    "run_cell",
    "run_sweep",
    "run_sweep_async",
    "sweep_warnings",
    "target_summary",
]

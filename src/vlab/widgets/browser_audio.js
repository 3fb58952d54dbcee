// vlab's browser audio widget (anywidget ESM): the page's microphone and speaker for a kernel session.
//
// One audio engine per model (initialize), any number of views (render): views show the state, the
// getUserMedia constraint toggles and two level meters. The engine runs one AudioContext with the
// vlab-audio worklet (browser_audio_worklet.js, sent by the kernel as the `_worklet` trait) and
// relays between the worklet's port and the kernel's comm. PCM16 goes as binary buffers both ways.

const TOGGLES = [
  ["echo_cancellation", "echoCancellation", "Echo cancellation"],
  ["noise_suppression", "noiseSuppression", "Noise suppression"],
  ["auto_gain_control", "autoGainControl", "Auto gain"],
];

function meterValue(rms) {
  const db = 20 * Math.log10(rms + 1e-9);
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

class Engine {
  constructor(model) {
    this.model = model;
    this.ctx = null;
    this.node = null;
    this.stream = null;
    this.source = null;
    this.inputLatencyS = 0;
    this.seq = 0;
    this.pending = []; // captured frames not sent yet: the kernel takes framesPerMessage in one message
    this.pendingSeq = 0;
    this.pendingT = 0;
    this.pendingPosition = null; // the last playback position while capturing: sent with the next frames
    this.framesPerMessage = 1;
    this.levels = { in: 0, out: 0 };
    this.views = new Set();
    this.chain = Promise.resolve(); // kernel messages are handled in order
    this.clearArrivals = new Map(); // clear number -> its arrival {ms: page clock, ctx: AudioContext time}
    this.onCustom = (msg, buffers) => {
      if (msg.type === "ping") {
        // answered at once, not behind queued playback: the round trip maps the page's clock
        this.send({ type: "pong", k: msg.k, b: performance.now() });
        return;
      }
      // a clear's arrival: on the page clock and on the AudioContext clock (the output being rendered)
      const at = msg.type === "clear" ? { ms: performance.now(), ctx: this.ctx ? this.ctx.currentTime : null } : null;
      this.chain = this.chain.then(() => this.handle(msg, buffers, at)).catch((err) => this.fail(err));
    };
    model.on("msg:custom", this.onCustom);
    this.send({ type: "hello", b: performance.now() });
  }

  send(content, buffers) {
    this.model.send(content, undefined, buffers || []);
  }

  status(state, message, settings) {
    this.send({ type: "status", state, message: message || "", settings: settings || {} });
  }

  fail(err) {
    this.status("error", `${err && err.name ? err.name + ": " : ""}${err && err.message ? err.message : err}`);
  }

  async ensureContext() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: "interactive" });
      const url = URL.createObjectURL(new Blob([this.model.get("_worklet")], { type: "text/javascript" }));
      try {
        await this.ctx.audioWorklet.addModule(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      this.node = new AudioWorkletNode(this.ctx, "vlab-audio", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        channelCount: 1,
        channelCountMode: "explicit",
      });
      this.node.connect(this.ctx.destination);
      this.node.port.onmessage = (e) => this.fromWorklet(e.data);
    }
    if (this.ctx.state !== "running") {
      // without a user gesture the browser may hold resume() pending: never wait on it for long
      const waited = new Promise((resolve) => setTimeout(resolve, 1000));
      await Promise.race([this.ctx.resume().catch(() => {}), waited]);
      if (this.ctx.state !== "running") this.status("suspended", this.ctx.state);
    }
  }

  // a click on the widget: the user gesture a browser may need before it plays or captures
  async resume() {
    if (this.ctx && this.ctx.state !== "running") {
      await this.ctx.resume().catch(() => {});
      if (this.ctx.state === "running" && this.stream) this.status("capturing", "", this.captureSettings);
    }
  }

  // AudioContext time -> performance.now() ms when that output sample is heard
  heardAt(t) {
    const ts = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : null;
    if (ts && ts.performanceTime > 0) return ts.performanceTime + (t - ts.contextTime) * 1000;
    const latency = (this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0);
    return performance.now() + (t - this.ctx.currentTime + latency) * 1000;
  }

  // AudioContext time of a captured sample -> performance.now() ms when it was captured
  capturedAt(t) {
    const latency = (this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0);
    return this.heardAt(t) - (latency + this.inputLatencyS) * 1000;
  }

  async handle(msg, buffers, at) {
    const kind = msg.type;
    if (kind === "capture_start") {
      await this.captureStart(msg);
    } else if (kind === "capture_stop") {
      this.captureStop();
    } else if (kind === "play") {
      await this.ensureContext();
      const dv = buffers[0];
      const pcm = new Int16Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
      this.node.port.postMessage({ type: "play", item: msg.item, rate: msg.rate, pcm }, [pcm.buffer]);
    } else if (kind === "clear") {
      if (this.node) {
        this.clearArrivals.set(msg.n, at);
        this.node.port.postMessage({ type: "clear", n: msg.n });
      } else this.send({ type: "cleared", n: msg.n, item: null, played_ms: 0, t_ms: performance.now(), r_ms: at.ms });
    }
  }

  async captureStart(msg) {
    this.captureStop(false);
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.status("insecure", window.location.origin);
      return;
    }
    await this.ensureContext();
    const audio = { channelCount: 1 };
    for (const [, constraint] of TOGGLES) audio[constraint] = !!msg.constraints[constraint];
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio });
    } catch (err) {
      const name = err && err.name;
      const state =
        name === "NotAllowedError" || name === "SecurityError"
          ? "denied"
          : name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError"
            ? "no_device"
            : "error";
      this.status(state, `${name}: ${err.message}`);
      return;
    }
    const track = this.stream.getAudioTracks()[0];
    const s = track.getSettings();
    this.inputLatencyS = typeof s.latency === "number" ? s.latency : 0;
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.source.connect(this.node);
    this.seq = 0;
    this.pending = [];
    this.framesPerMessage = msg.frames_per_message || 1;
    this.node.port.postMessage({ type: "capture", rate: msg.rate, frameSamples: Math.round((msg.rate * msg.frame_ms) / 1000) });
    const settings = { label: track.label, context_rate: this.ctx.sampleRate };
    for (const key of ["sampleRate", "channelCount", "latency", "echoCancellation", "noiseSuppression", "autoGainControl"]) {
      if (key in s) settings[key] = s[key];
    }
    this.captureSettings = settings;
    this.status("capturing", "", settings);
  }

  captureStop(report = true) {
    this.flushFrames();
    if (this.node) this.node.port.postMessage({ type: "capture_stop" });
    if (this.source) this.source.disconnect();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.source = this.stream = null;
    if (report) this.status("idle", "");
  }

  fromWorklet(m) {
    if (m.type === "frame") {
      if (!this.pending.length) {
        this.pendingSeq = this.seq;
        this.pendingT = this.capturedAt(m.t);
      }
      this.seq++;
      this.pending.push(m.pcm);
      if (this.pending.length >= this.framesPerMessage) this.flushFrames();
    } else if (m.type === "levels") {
      this.levels = { in: meterValue(m.in), out: meterValue(m.out) };
      for (const view of this.views) view.levels(this.levels);
    } else if (m.type === "playback") {
      const content = { type: "playback", kind: m.kind, item: m.item, t_ms: this.heardAt(m.t) };
      if (m.played_ms !== undefined) content.played_ms = m.played_ms;
      if (m.peak !== undefined) content.peak = m.peak;
      this.send(content);
    } else if (m.type === "position") {
      const position = { item: m.item, played_ms: m.played_ms, t_ms: this.heardAt(m.t) };
      // while capturing, it rides on the next frame message (sent as often): one comm message fewer
      if (this.stream && this.framesPerMessage > 1) this.pendingPosition = position;
      else this.send({ type: "position", ...position });
    } else if (m.type === "cleared") {
      const content = { type: "cleared", n: m.n, item: m.item, played_ms: m.played_ms, peak: m.peak, t_ms: this.heardAt(m.t) };
      const at = this.clearArrivals.get(m.n);
      this.clearArrivals.delete(m.n);
      if (at) {
        content.r_ms = at.ms; // the clear message reached the page
        // from the output being rendered when it arrived to the first silent output sample (the page's part)
        if (at.ctx !== null) content.stop_ms = Math.max(0, (m.t - at.ctx) * 1000);
      }
      this.send(content);
    }
  }

  // consecutive frames in one message: the first one's number and capture time, a buffer per frame
  flushFrames() {
    const position = this.pendingPosition;
    this.pendingPosition = null;
    if (!this.pending.length) {
      if (position) this.send({ type: "position", ...position });
      return;
    }
    const content = { type: "frame", seq: this.pendingSeq, t_ms: this.pendingT, s_ms: performance.now() };
    if (position) content.position = position;
    this.send(content, this.pending);
    this.pending = [];
  }

  close() {
    this.model.off("msg:custom", this.onCustom);
    this.captureStop(false);
    if (this.ctx) this.ctx.close();
  }
}

const engines = new WeakMap();

export default {
  initialize({ model }) {
    const engine = new Engine(model);
    engines.set(model, engine);
    return () => engine.close();
  },

  render({ model, el }) {
    const engine = engines.get(model);
    el.classList.add("vlab-browser-audio");
    const head = document.createElement("div");
    head.className = "vlab-ba-head";
    const state = document.createElement("span");
    state.className = "vlab-ba-state";
    head.append("Browser audio: ", state);
    const message = document.createElement("div");
    message.className = "vlab-ba-message";
    const toggles = document.createElement("div");
    toggles.className = "vlab-ba-toggles";
    for (const [trait, , label] of TOGGLES) {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = model.get(trait);
      box.addEventListener("change", () => {
        model.set(trait, box.checked);
        model.save_changes();
      });
      model.on(`change:${trait}`, () => (box.checked = model.get(trait)));
      const wrap = document.createElement("label");
      wrap.append(box, " " + label);
      toggles.append(wrap);
    }
    const meters = document.createElement("div");
    meters.className = "vlab-ba-meters";
    const bars = {};
    for (const [key, label] of [["in", "microphone →"], ["out", "← speaker"]]) {
      const row = document.createElement("div");
      row.className = "vlab-ba-meter";
      const bar = document.createElement("meter");
      bar.min = 0;
      bar.max = 1;
      bar.value = 0;
      bar.dataset.direction = key;
      row.append(label + " ", bar);
      meters.append(row);
      bars[key] = bar;
    }
    const update = () => {
      const s = model.get("state");
      state.textContent = model.get("state_label") || s;
      el.dataset.state = s;
      message.textContent = model.get("message");
      message.style.display = model.get("message") ? "" : "none";
    };
    model.on("change:state", update);
    model.on("change:message", update);
    model.on("change:state_label", update);
    update();
    el.append(head, toggles, meters, message);
    el.addEventListener("click", () => engine && engine.resume());
    const view = { levels: (lv) => ((bars.in.value = lv.in), (bars.out.value = lv.out)) };
    if (engine) engine.views.add(view);
    return () => {
      if (engine) engine.views.delete(view);
    };
  },
};

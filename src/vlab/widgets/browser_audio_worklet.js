// vlab's AudioWorklet: capture (resampled to the session rate, PCM16 frames) and playback (a jitter
// buffer of assistant items). One processor, one input (the microphone), one output (the speaker).
// Loaded from a Blob URL by browser_audio.js; it talks to the page only through its port.
//
// Port messages in:  capture {rate, frameSamples}, capture_stop, play {item, rate, pcm: Int16Array},
//                    clear {n}
// Port messages out: frame {pcm: ArrayBuffer, t}, playback {kind, item, t, played_ms, peak},
//                    position {item, played_ms, t}, cleared {n, item, played_ms, t}, levels {in, out}
// Times `t` are AudioContext times in seconds: of a captured frame's first sample, or of the output
// sample where playback started, finished, or (cleared) the first silent sample.

const QUANTUM_S = () => 128 / sampleRate;

function lowpass(cutoff, taps) {
  // windowed-sinc low-pass (Blackman), cutoff in cycles per input sample, unity gain at DC
  const h = new Float32Array(taps);
  const m = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const x = i - m;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum;
  return h;
}

// Streaming resampler: anti-alias low-pass when going down, then linear interpolation.
class Resampler {
  constructor(fromRate, toRate) {
    this.step = fromRate / toRate; // input samples per output sample
    this.taps = this.step > 1 ? lowpass(0.45 / this.step, 31) : null;
    this.hist = this.taps ? new Float32Array(this.taps.length) : null;
    this.hi = 0;
    this.delay = this.taps ? (this.taps.length - 1) / 2 : 0; // group delay, input samples
    this.n = 0; // input samples consumed
    this.pos = 0; // next output position, in input samples
    this.prev = 0;
  }
  // Feeds x; calls emit(sample, inputPosition) for every output sample (position on the input index).
  push(x, emit) {
    const taps = this.taps;
    for (let i = 0; i < x.length; i++) {
      let y = x[i];
      if (taps) {
        const hist = this.hist, len = taps.length;
        hist[this.hi] = y;
        let acc = 0;
        for (let j = 0, k = this.hi; j < len; j++, k = k === 0 ? len - 1 : k - 1) acc += taps[j] * hist[k];
        this.hi = (this.hi + 1) % len;
        y = acc;
      }
      while (this.pos <= this.n) {
        const frac = this.pos - (this.n - 1);
        emit(this.prev + (y - this.prev) * frac, this.pos - this.delay);
        this.pos += this.step;
      }
      this.prev = y;
      this.n += 1;
    }
  }
}

class VlabAudio extends AudioWorkletProcessor {
  constructor() {
    super();
    this.capture = null;
    this.queue = []; // segments {item, data: Float32Array, off}
    this.items = new Map(); // id -> {rendered, started, dry, peak, resampler}
    this.current = null; // id of the item last rendered
    this.nextPosition = 0;
    this.nextLevels = 0;
    this.levelIn = 0;
    this.levelOut = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === "capture") {
      this.capture = {
        resampler: new Resampler(sampleRate, m.rate),
        frameSamples: m.frameSamples,
        frame: new Int16Array(m.frameSamples),
        fill: 0,
        t0: 0,
        blockT: 0,
        blockN: 0,
      };
    } else if (m.type === "capture_stop") {
      this.capture = null;
    } else if (m.type === "play") {
      this.enqueue(m.item, m.rate, m.pcm);
    } else if (m.type === "clear") {
      this.clear(m.n);
    }
  }

  enqueue(id, rate, pcm) {
    let item = this.items.get(id);
    if (!item) {
      item = { rendered: 0, started: false, dry: false, peak: 0, resampler: new Resampler(rate, sampleRate), out: [] };
      this.items.set(id, item);
      if (this.items.size > 64) this.items.delete(this.items.keys().next().value);
    }
    const x = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) x[i] = pcm[i] / 32768;
    const out = [];
    item.resampler.push(x, (s) => out.push(s));
    if (out.length) this.queue.push({ item: id, data: Float32Array.from(out), off: 0 });
  }

  clear(n) {
    // the item being heard: the one playing, else the next queued (none of it heard yet), else the one
    // that just ran dry (an underrun mid-reply, or its end)
    const playing = this.current !== null && !this.items.get(this.current)?.dry ? this.current : null;
    const id = playing ?? (this.queue.length ? this.queue[0].item : this.current);
    const item = id !== null ? this.items.get(id) : null;
    this.queue = [];
    if (item) item.dry = true;
    // handled between render quanta: the next quantum, which starts here, is already silent
    this.port.postMessage({
      type: "cleared",
      n,
      item: id,
      played_ms: item ? (1000 * item.rendered) / sampleRate : 0,
      peak: item ? item.peak : 0,
      t: currentTime + QUANTUM_S(),
    });
    this.current = null;
  }

  finish(id, t) {
    const item = this.items.get(id);
    item.dry = true;
    this.port.postMessage({ type: "playback", kind: "finished", item: id, t, played_ms: (1000 * item.rendered) / sampleRate, peak: item.peak });
  }

  process(inputs, outputs) {
    const input = inputs[0];
    if (this.capture && input && input.length) this.captureBlock(input[0]);
    const out = outputs[0][0];
    out.fill(0);
    let k = 0;
    let energy = 0;
    while (k < out.length && this.queue.length) {
      const seg = this.queue[0];
      const item = this.items.get(seg.item);
      const t = currentTime + k / sampleRate;
      if (this.current !== null && this.current !== seg.item && !this.items.get(this.current)?.dry) this.finish(this.current, t);
      if (!item.started) {
        item.started = true;
        this.port.postMessage({ type: "playback", kind: "started", item: seg.item, t });
      } else if (item.dry) {
        this.port.postMessage({ type: "playback", kind: "underrun", item: seg.item, t });
      }
      item.dry = false;
      this.current = seg.item;
      const n = Math.min(out.length - k, seg.data.length - seg.off);
      for (let i = 0; i < n; i++) {
        const s = seg.data[seg.off + i];
        out[k + i] = s;
        energy += s * s;
        const a = s < 0 ? -s : s;
        if (a > item.peak) item.peak = a;
      }
      item.rendered += n;
      k += n;
      seg.off += n;
      if (seg.off >= seg.data.length) this.queue.shift();
    }
    if (!this.queue.length && this.current !== null && !this.items.get(this.current).dry) {
      this.finish(this.current, currentTime + k / sampleRate);
    }
    this.levelOut = Math.max(Math.sqrt(energy / out.length), this.levelOut * 0.9);
    if (currentTime >= this.nextPosition && this.current !== null && !this.items.get(this.current).dry) {
      this.nextPosition = currentTime + 0.1;
      const item = this.items.get(this.current);
      this.port.postMessage({ type: "position", item: this.current, played_ms: (1000 * item.rendered) / sampleRate, t: currentTime + k / sampleRate });
    }
    if (currentTime >= this.nextLevels) {
      this.nextLevels = currentTime + 0.05;
      this.port.postMessage({ type: "levels", in: this.levelIn, out: this.levelOut });
    }
    return true;
  }

  captureBlock(x) {
    const c = this.capture;
    let energy = 0;
    for (let i = 0; i < x.length; i++) energy += x[i] * x[i];
    this.levelIn = Math.max(Math.sqrt(energy / x.length), this.levelIn * 0.9);
    const blockT = currentTime;
    const firstN = c.resampler.n;
    c.resampler.push(x, (s, pos) => {
      if (c.fill === 0) c.t0 = blockT + (pos - firstN) / sampleRate;
      c.frame[c.fill++] = Math.max(-32768, Math.min(32767, Math.round(s * 32768)));
      if (c.fill === c.frame.length) {
        const pcm = c.frame.buffer;
        this.port.postMessage({ type: "frame", pcm, t: c.t0 }, [pcm]);
        c.frame = new Int16Array(c.frameSamples); // the old one's buffer was transferred (now empty)
        c.fill = 0;
      }
    });
  }
}

registerProcessor("vlab-audio", VlabAudio);

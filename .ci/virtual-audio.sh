#!/usr/bin/env bash
# A virtual sound card for headless machines: a user-space PulseAudio with two clocked 24 kHz mono
# null sinks, seen by PortAudio (sounddevice) as the ALSA devices "pulse" and "default".
#
#   vsink   the default sink: what a Speaker plays goes here; record "vsink.monitor" to hear it
#   vmic    a virtual microphone: play a WAV into it (`paplay -d vmic prompt.wav`); its monitor
#           "vmic.monitor" is the default source, so a Microphone on "pulse" records it
#
# Usage:  eval "$(.ci/virtual-audio.sh)"        start (idempotent) and export the variables printed
#         .ci/virtual-audio.sh stop             stop the daemon and its keepalive clients
#         .ci/virtual-audio.sh status           exit 0 if it runs
#
# Each sink keeps a low-latency keepalive client (pacat of /dev/zero) attached: an idle null sink
# runs with a 2 s block and stalls every new stream for 1-2 s (docs: shared/research/env-setup.md §1a).
# PULSE_SINK / PULSE_SOURCE pick another sink or source for one process. Progress goes to stderr;
# only the `export` lines go to stdout.
set -euo pipefail

export XDG_RUNTIME_DIR="${VLAB_AUDIO_DIR:-${TMPDIR:-/tmp}/vlab-audio}"  # where Python's tempfile looks too
export PULSE_SERVER="unix:$XDG_RUNTIME_DIR/pulse/native"
SINKS=(vsink vmic)
RATE=24000

say() { echo "virtual-audio: $*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  for sink in "${SINKS[@]}"; do
    pidfile="$XDG_RUNTIME_DIR/keepalive-$sink.pid"
    if alive "$pidfile"; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    rm -f "$pidfile"
  done
  pulseaudio --kill 2>/dev/null || true
  for _ in $(seq 50); do pactl info >/dev/null 2>&1 || break; sleep 0.05; done
  say "stopped"
}

if [ "${1:-start}" = stop ]; then stop; exit 0; fi
if [ "${1:-start}" = status ]; then pactl info >/dev/null 2>&1; exit $?; fi

for tool in pulseaudio pactl pacat; do
  command -v "$tool" >/dev/null || {
    say "$tool not found; install it: apt-get install -y --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"
    exit 1
  }
done

mkdir -p "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

if ! pactl info >/dev/null 2>&1; then
  # -n: no default.pa (no udev, no suspend-on-idle); anonymous auth is safe in a 0700 runtime dir and
  # lets clients with another HOME (pytest tmp dirs) connect without the cookie. Root only gets a warning.
  pulseaudio -D -n --exit-idle-time=-1 --system=false --disallow-exit \
    --log-target="file:$XDG_RUNTIME_DIR/pulse.log" \
    --load="module-native-protocol-unix auth-anonymous=1" 2>/dev/null
  for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.05; done
  pactl info >/dev/null 2>&1 || { say "pulseaudio did not start; see $XDG_RUNTIME_DIR/pulse.log"; exit 1; }
fi

for sink in "${SINKS[@]}"; do
  if ! pactl list short sinks | cut -f2 | grep -qx "$sink"; then
    pactl load-module module-null-sink sink_name="$sink" rate=$RATE channels=1 format=s16le \
      sink_properties=device.description="vlab-$sink" >/dev/null
  fi
  pidfile="$XDG_RUNTIME_DIR/keepalive-$sink.pid"
  if ! alive "$pidfile"; then
    nohup pacat --playback -d "$sink" --rate=$RATE --channels=1 --format=s16le --latency-msec=10 \
      </dev/zero >/dev/null 2>&1 &
    echo $! >"$pidfile"
  fi
done
pactl set-default-sink vsink
pactl set-default-source vmic.monitor

# Ready when every sink's actual latency is low (the first wake-up of an idle sink can be ~2 s away).
ready=0
for _ in $(seq 100); do
  lats=$(pactl list sinks | sed -n 's/.*Latency: \([0-9]*\) usec.*/\1/p')
  if [ "$(echo "$lats" | wc -l)" -ge ${#SINKS[@]} ] && ! echo "$lats" | awk '$1 >= 100000 {bad=1} END {exit !bad}'; then
    ready=1
    break
  fi
  sleep 0.05
done
[ $ready = 1 ] || { say "sinks not ready after 5 s (latency: $(echo $lats)); see $XDG_RUNTIME_DIR/pulse.log"; exit 1; }
say "ready: sinks ${SINKS[*]} at $RATE Hz mono, default source vmic.monitor"

echo "export XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
echo "export PULSE_SERVER=$PULSE_SERVER"

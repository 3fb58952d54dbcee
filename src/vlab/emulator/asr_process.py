"""The recognition process: PocketSphinx decoding beside the emulator (``python -m vlab.emulator.asr_process``).

It reads requests (:data:`vlab.emulator.asr.REQUEST` and the audio) from stdin and answers each on stdout
with :func:`vlab.emulator.asr.transcript_json`, until its input ends. See
:class:`vlab.emulator.asr.RecognitionProcess`, the other side.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys

from vlab.emulator.asr import (
    NOISE_FLOOR_RMS,
    REQUEST,
    PocketSphinxRecognizer,
    RecognitionError,
    transcript_json,
)


def main() -> None:
    """Load the default decoder, then answer requests until stdin ends (the parent closed it or exited).

    Ctrl-C and a notebook's "interrupt kernel" reach every process of the group: this one ignores them,
    as its parent's helper.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    recognizers = {NOISE_FLOOR_RMS: PocketSphinxRecognizer()}  # noise floor → its recognizer
    with contextlib.suppress(RecognitionError):  # each request then answers with the error
        recognizers[NOISE_FLOOR_RMS].load()
    while len(head := stdin.read(REQUEST.size)) == REQUEST.size:
        rate, noise_floor_rms, n = REQUEST.unpack(head)
        pcm16 = stdin.read(n)
        recognizer = recognizers.get(noise_floor_rms)
        if recognizer is None:
            recognizer = recognizers[noise_floor_rms] = PocketSphinxRecognizer(
                noise_floor_rms=noise_floor_rms
            )
        try:
            answer = transcript_json(recognizer.transcribe(pcm16, rate))
        except RecognitionError as exc:
            answer = json.dumps({"error": str(exc)}).encode()
        stdout.write(len(answer).to_bytes(4, "little") + answer)
        stdout.flush()


if __name__ == "__main__":
    main()

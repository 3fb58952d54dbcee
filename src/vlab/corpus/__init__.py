"""Your own recordings as prompt sets: import labelled folders, propose labels for unlabelled ones.

``vlab prompts import FOLDER`` (:func:`import_folder`) reads audio plus RTTM, Praat TextGrid, Audacity
or CSV labels (:mod:`vlab.corpus.labels`) into a ``manifest.json`` that :func:`vlab.prompts.load_prompt_set`
and sweeps read.
"""

from vlab.corpus.importer import DEFAULT_HOLD_GAP_MS, LABEL_SOURCES, derive_turns, import_folder
from vlab.corpus.labels import Label, LabelError, read_labels

__all__ = [
    "DEFAULT_HOLD_GAP_MS",
    "LABEL_SOURCES",
    "Label",
    "LabelError",
    "derive_turns",
    "import_folder",
    "read_labels",
]

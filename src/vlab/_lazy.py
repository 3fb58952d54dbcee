"""Package attributes imported on first use (PEP 562), so importing a package loads only what it needs."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, sources: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose name → module ``sources`` load on first use.

    Each name is imported from its module the first time it is read, then kept in the package. So is each
    public submodule (``vlab.metrics`` after ``import vlab``), as SciPy's are. ``__dir__`` lists the
    package's ``__all__``. A name that is neither says so, with the closest one it may have meant.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = sources.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            namespace[name] = value
            return value
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")  # which sets it on the package too
        submodules = [m.name for m in pkgutil.iter_modules(namespace.get("__path__", [])) if m.name[0] != "_"]
        close = difflib.get_close_matches(name, [*sources, *submodules], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise AttributeError(f"module {package!r} has no attribute {name!r}{hint}")

    def __dir__() -> list[str]:
        return sorted(namespace["__all__"])

    return __getattr__, __dir__

"""Errors and warnings raised by vlab.

Every error a user can cause says what is wrong and how to fix it, and never contains a secret::

    VlabError
    ├── ConfigError          invalid settings, missing or contradictory configuration
    │   └── SettingsRefused        the server refused the session settings (the run went on without them)
    ├── AudioFormatError     a prompt file vlab cannot read or use
    ├── DeviceError          no sound device, PortAudio missing, device busy
    ├── ConnectionFailed     cannot reach or authenticate with the Voice Live endpoint
    │   ├── AuthenticationFailed   no credential, a refused key or token, a missing role
    │   └── Throttled              the service's rate or session-count limit (HTTP 429)
    ├── NotAnswered          a prompt not answered within the time allowed
    ├── UsageError           a call that cannot work as made (a Session opened twice)
    └── ProtocolError        the server sent something that breaks the Voice Live protocol

    VlabWarning              suspicious but usable input (silent prompt, very long file)
    └── EmulatorExposedWarning   (vlab.emulator.server) listening beyond loopback with a generated key

``ConfigError`` and ``AudioFormatError`` subclass ``ValueError`` too, so ``except ValueError`` catches them;
``NotAnswered`` subclasses ``TimeoutError``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

_Class = TypeVar("_Class", bound=type)


class VlabError(Exception):
    """Base class of every error vlab raises on purpose."""


class ConfigError(VlabError, ValueError):
    """A setting or configuration value is invalid; the message names it and the accepted values."""


class RunFolderTaken(ConfigError):
    """A session was given a run folder that holds another session's events, and not told to replace them."""


class AudioFormatError(VlabError, ValueError):
    """An audio file or buffer cannot be used.

    Args:
        path: The file concerned, if any.
        problem: What is wrong with it.
        fix: What the user can do about it.
    """

    def __init__(self, problem: str, *, path: str | None = None, fix: str = "") -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" {self.fix}" if self.fix else ""
        return f"{where}{self.problem}.{hint}"


class DeviceError(VlabError, RuntimeError):
    """A sound device cannot be opened or PortAudio is missing."""


class ConnectionFailed(VlabError, ConnectionError):
    """The Voice Live endpoint could not be reached, refused the credentials, or dropped the session."""


class AuthenticationFailed(ConnectionFailed):
    """No credential could produce a token, or the endpoint refused the key or token.

    The message names the credential sources tried and the fix (``az login``,
    ``AZURE_VOICELIVE_API_KEY``, the *Cognitive Services User* role).

    Args:
        message: What failed and how to fix it (never a secret).
        sources: The credential sources tried, in order (e.g. ``("EnvironmentCredential", ...)``).
    """

    def __init__(self, message: str, *, sources: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.sources = sources


class Throttled(ConnectionFailed):
    """The service refused a connection for its rate or session-count limit (HTTP 429).

    Args:
        message: What happened and what to do.
        retry_after_s: The wait the service asked for (``Retry-After``), if it said.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UsageError(VlabError, RuntimeError):
    """vlab was called in a way that cannot work (e.g. a Session opened twice); the message says how to call it."""


def check_keys(
    where: str, data: Mapping[str, Any], known: Collection[str], *, what: str = "key(s)", hint: str = ""
) -> None:
    """Refuse keys of ``where`` (a config's ``[run]``, the emulator's options) that are not ``known``.

    The :class:`ConfigError` names the known key each unknown one is a typo or a shortening of, then ``hint``.
    """
    unknown = sorted(set(data) - set(known))
    if unknown:
        guesses = {k: guess for k in unknown if (guess := closest_name(k, known))}
        if len(unknown) == 1 and guesses:
            guessed = repr(guesses[unknown[0]])
        else:
            guessed = ", ".join(f"{guess!r} for {k!r}" for k, guess in guesses.items())
        raise ConfigError(
            f"unknown {what} {', '.join(repr(k) for k in unknown)} in {where}"
            + (f" (did you mean {guessed}?)" if guesses else "")
            + f"; known: {', '.join(sorted(known))}"
            + (f". {hint}" if hint else "")
        )


def check_keywords(where: str, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Refuse ``options`` that ``function`` (a class: its constructor) takes no keyword for, as :func:`check_keys`.

    A function that takes ``**options`` takes anything, so nothing is refused (a test's stand-in, say).
    """
    takes = inspect.signature(function).parameters.values()
    if all(p.kind is not p.VAR_KEYWORD for p in takes):
        check_keys(
            where, options, [p.name for p in takes if p.kind is not p.POSITIONAL_ONLY], what="option(s)"
        )


def refuse_unknown_fields(cls: _Class) -> _Class:
    """Class decorator, above ``@dataclass``: a keyword the class has no field for is a :class:`ConfigError`.

    The message names the field meant (``ServerVad(treshold=0.6)``: did you mean 'threshold'?), where a
    dataclass raises ``TypeError: unexpected keyword argument``. ``dataclasses.replace`` is checked too.
    """
    init: Callable[..., None] = vars(cls)["__init__"]  # the one @dataclass wrote
    known = frozenset(field.name for field in dataclasses.fields(cls) if field.init)
    where = f"{cls.__name__}(...)"

    @functools.wraps(init)
    def checked_init(self: object, *args: Any, **kwargs: Any) -> None:
        if not known.issuperset(kwargs):
            check_keys(where, kwargs, known, what="setting(s)")
        init(self, *args, **kwargs)

    cls.__init__ = checked_init  # type: ignore[misc]
    return cls


def check_seconds(name: str, value: object) -> None:
    """Refuse ``value`` for ``name`` (a timeout) unless it is a number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")


def check_number(name: str, value: object, minimum: float = 0.0, maximum: float = math.inf) -> None:
    """Refuse ``value`` for ``name`` unless it is a number from ``minimum`` to ``maximum`` (not NaN)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not minimum <= float(value) <= maximum
    ):
        within = (
            f" from {minimum:g} to {maximum:g}"
            if maximum < math.inf
            else (f" ≥ {minimum:g}" if minimum > -math.inf else "")
        )
        raise ConfigError(f"{name} must be a number{within}, got {value!r}")


def check_numbers(
    name: str,
    values: object,
    expected: str,
    *,
    each: str | None = None,
    minimum: float = 0.0,
    maximum: float = math.inf,
) -> list[float]:
    """``values`` (for ``name``) as a list of floats, each checked as :func:`check_number` does.

    One number, a string or anything else that is not a list of them is refused, with ``expected`` (what
    ``name`` must be) in the message; ``each`` names one value (default: ``each of NAME``). A generator is
    read once.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{name} must be {expected}, got {values!r}")
    listed = list(values)
    for value in listed:
        check_number(each or f"each of {name}", value, minimum, maximum)
    return [float(value) for value in listed]


def refuse_a_file_in_the_way(folder: str | os.PathLike[str], value: str, what: str = "") -> None:
    """Refuse ``folder`` (``value`` as the user gave it) when it, or the nearest parent that exists, is a file.

    ``what`` names it in the message (``"the sweep folder "``); missing folders are left to be created.
    """
    path = Path(folder)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = (
            f"{value!r} is a file" if existing == Path(value) else f"{value!r}: {str(existing)!r} is a file"
        )
        raise ConfigError(f"{what}{where}, not a folder; choose another path (missing folders are created)")


def check_count(name: str, value: object, minimum: int = 1) -> None:
    """Refuse ``value`` for ``name`` unless it is an integer ≥ ``minimum`` (``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


def first_few(names: Iterable[str], limit: int = 5, *, sep: str = ", ") -> str:
    """The first ``limit`` of ``names`` joined by ``sep``, then `` …`` when there are more (for a message)."""
    listed = list(names)
    return sep.join(listed[:limit]) + (" …" if len(listed) > limit else "")


def first_repeated(names: Iterable[str]) -> str | None:
    """The first name that comes a second time (to refuse two settings or prompts of one name), or None."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def closest_name(key: str, known: Collection[str]) -> str | None:
    """The known name ``key`` is a typo or a shortening of, if one stands out (for "did you mean")."""
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    starting = [k for k in known if k.startswith(key)]
    return close[0] if close else starting[0] if len(starting) == 1 else None


class AsyncWithOnly:
    """For classes opened with ``async with``: a plain ``with`` raises a :class:`UsageError` saying so.

    Python's own error for it is a ``TypeError`` about the context-manager protocol (3.10 to 3.12).
    """

    __slots__ = ()

    def __enter__(self) -> NoReturn:
        name = type(self).__name__
        raise UsageError(
            f"{name} is an async context manager: open it with `async with {name}(...) as ...:` (a notebook "
            "cell can, as it is); a plain `with` cannot wait for it"
        )

    def __exit__(self, *exc: object) -> None:
        """Never called: :meth:`__enter__` refuses."""


class SettingsRefused(ConfigError):
    """The server refused the session settings (an ``error`` answering ``session.update``).

    The session went on with the server's own settings, so its figures are not those of the settings
    asked for.
    """


def settings_refused(refusal: str, what: str) -> SettingsRefused:
    """The :class:`SettingsRefused` for the server's ``refusal`` (code: message) of a run's settings.

    ``what`` names what the refusal makes wrong (``"the cell's figures"``).
    """
    return SettingsRefused(
        f"the server refused the session settings ({refusal.rstrip('.')}); the session went on with the server's own, "
        f"so {what} do not measure the settings asked for. Change the setting it names (a voice or model "
        "the resource does not offer, say) and run again"
    )


class NotAnswered(VlabError, TimeoutError):
    """The server did not answer a prompt within the time allowed (a slow service, or a short timeout)."""


class ProtocolError(VlabError, RuntimeError):
    """The server sent an event that breaks the Voice Live protocol."""


class VlabWarning(UserWarning):
    """Input that works but is probably not what the user meant."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ASYNCIO_DIR = os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "asyncio") + os.sep


def warn_user(message: str, category: type[Warning] = VlabWarning) -> None:
    """Issue a warning attributed to the first caller outside vlab (as pandas' ``find_stack_level``).

    A fixed ``stacklevel`` is right for one call path only: ``load_wav`` reaches the check that warns
    through ``read_audio``, which users call too. This walks the stack instead. A warning from a task or
    callback vlab started (a tool call a ``ToolRunner`` answers) has no caller of the user's: it is shown
    as Python shows a warning without a caller (``sys:1``), not at a line inside asyncio.
    """
    frame = inspect.currentframe()
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    if frame is not None and frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
        while frame is not None:  # past the whole stack
            frame = frame.f_back
            level += 1
    warnings.warn(message, category, stacklevel=level)

"""The error hierarchy shared by the whole product.

Every error the product raises on purpose is an :class:`AVPipelineError`, so callers can
catch the product's failures without catching programming errors. Messages name the file,
frame or field, what was expected and what came.

``av_pipeline`` re-exports these names and adds its own subclasses; they live here because
the calibration package must stand alone (numpy + pyquaternion only).
"""

from __future__ import annotations

import reprlib

#: Most characters of one parsed value shown in an error message (see :func:`short_repr`).
SHORT_REPR_LIMIT = 200
#: Most characters of a whole error message; a longer one is cut (the value caps above
#: normally keep messages far shorter, this bounds what a nested error's text can add).
MAX_MESSAGE_CHARS = 4000


class _BoundedRepr(reprlib.Repr):
    """``reprlib`` with integers shown by size: ``repr`` of a 5000-digit int raises in Python 3.11+."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:
            return f"<int of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)

    def repr_bool(self, x: bool, level: int) -> str:
        return repr(x)


_REPR = _BoundedRepr()
_REPR.maxlevel = 3
_REPR.maxstring = SHORT_REPR_LIMIT
_REPR.maxother = SHORT_REPR_LIMIT
_REPR.maxlong = 80
for _name in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _name, 8)


def short_repr(value: object, limit: int = SHORT_REPR_LIMIT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, in time and memory bounded by ``limit``.

    Every parsed input value shown in an error message goes through this: a YAML alias bomb
    or a 5000-digit integer must not make the message itself huge (or fail to format).
    Nested containers are shown 3 levels and 8 items deep.

    >>> short_repr("x" * 1000, limit=12)
    "'xxxxxxx...'"
    >>> short_repr(10 ** 5000)
    '<int of about 5001 digits>'
    >>> bomb = [["lol"] * 9] * 9
    >>> for _ in range(20):
    ...     bomb = [bomb] * 9
    >>> len(short_repr(bomb)) <= 200
    True
    """
    if isinstance(value, (str, bytes, bytearray)):
        text = repr(value[: limit + 1])
    else:
        try:
            text = _REPR.repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
            text = f"<{type(value).__name__}>"
    if len(text) > limit:
        keep = max(limit - 4, 1)
        text = text[:keep] + "..." + text[-1:] if text[:1] in "'\"[({" else text[: limit - 3] + "..."
    return text


def cap_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters (with a note saying how much was cut)."""
    if len(message) <= limit:
        return message
    return message[:limit] + f" ... [{len(message) - limit} more characters cut]"


class AVPipelineError(Exception):
    """Base class of every error the product raises deliberately."""


class ShapeError(AVPipelineError, ValueError):
    """An array has the wrong shape, dtype or non-finite values.

    The message shows the argument name, the expected shape and the actual one:
    ``points: expected (N, 3) float array, got (1200,)``.
    """


class CalibrationError(AVPipelineError, ValueError):
    """A calibration value is invalid (e.g. a rotation far from orthonormal)."""


class CalibrationFileError(CalibrationError):
    """A calibration file cannot be read: missing key, malformed number, wrong size.

    Attributes:
        path: the file (or ``"<string>"`` for in-memory text).
        field: the key or field that failed, or ``None`` when the whole file is bad.
    """

    def __init__(self, path: object, field: str | None, message: str) -> None:
        self.path = str(path)
        self.field = field
        where = f"{self.path}" + (f": field '{field}'" if field else "")
        super().__init__(cap_message(f"{where}: {message}"))


class UnknownFrameError(CalibrationError, KeyError):
    """A frame name is not in a :class:`~calibration.FrameGraph`; the message lists known frames."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ExtrapolationError(CalibrationError):
    """A time-stamped transform was asked for outside the time range it is known for."""

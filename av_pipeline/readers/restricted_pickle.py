"""Read pandas DataFrame pickles (PandaSet ships them) without letting a file run code.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` instructions import any
callable by module and name and ``REDUCE`` calls it, so ``pickle.load`` on a crafted file
can call ``os.system``. :func:`read_dataframe_pickle` never uses plain ``pickle``: it runs a
:class:`pickle.Unpickler` subclass whose ``find_class`` resolves only the exact
``(module, name)`` pairs in :data:`ALLOWED_PICKLE_GLOBALS`, the pandas and numpy
constructors a DataFrame of numbers and Python strings needs (``DataFrame``,
``BlockManager``, ``Index``, ``RangeIndex``, numpy ``ndarray``/``dtype`` reconstruction,
``slice``), as written by pandas 1.x (PandaSet) and today's pandas. Anything else, e.g.
``os.system``, ``builtins.eval``, ``subprocess.Popen`` or a pyarrow-backed string column,
is refused with a :class:`~av_pipeline.errors.LogFormatError` naming the file and the
global, before it is imported.

The unpickler is pandas' own compatibility unpickler (it maps the class locations of older
pandas versions, e.g. ``Int64Index`` and ``new_block``, to today's) with the allow-list in
front. pandas is needed to rebuild the DataFrame: install the ``pandaset`` extra.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path
from typing import Any

from av_pipeline.errors import LogFormatError

#: The only globals a DataFrame pickle may import: ``(module, name)`` as written in the file.
#: Both the pandas 1.x locations (PandaSet's files) and today's are listed; numpy 1.x wrote
#: ``numpy.core``, numpy 2 writes ``numpy._core``. Protocol 2 pickles name ``__builtin__``
#: and encode bytes with ``_codecs.encode``.
ALLOWED_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # pandas containers
        ("pandas", "DataFrame"),
        ("pandas.core.frame", "DataFrame"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.blocks", "new_block"),  # pandas 1.3-1.5
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas", "Index"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas", "RangeIndex"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas.core.indexes.numeric", "Int64Index"),  # pandas < 2
        ("pandas.core.indexes.numeric", "UInt64Index"),
        ("pandas.core.indexes.numeric", "Float64Index"),
        # numpy arrays and scalars
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # plain Python values
        ("builtins", "slice"),
        ("__builtin__", "slice"),
        ("builtins", "bytearray"),
        ("__builtin__", "bytearray"),
        ("_codecs", "encode"),
    }
)


def _unpickler_base() -> type:
    try:
        from pandas.compat.pickle_compat import Unpickler as PandasCompatUnpickler
    except ImportError:  # a pandas without the compat module: plain (pure Python) unpickling
        return pickle._Unpickler  # type: ignore[attr-defined]
    return PandasCompatUnpickler


_RESTRICTED_CLASS: type | None = None


def _restricted_unpickler_class() -> type:
    global _RESTRICTED_CLASS
    if _RESTRICTED_CLASS is None:
        base = _unpickler_base()

        class RestrictedUnpickler(base):  # type: ignore[misc, valid-type]
            """pandas' compatibility unpickler that resolves only :data:`ALLOWED_PICKLE_GLOBALS`."""

            source = "<pickle>"

            def find_class(self, module: str, name: str) -> Any:
                if (module, name) not in ALLOWED_PICKLE_GLOBALS:
                    raise LogFormatError(
                        self.source,
                        "pickle",
                        f"refused to load global {_capped(module)}.{_capped(name)}: a DataFrame pickle may only name "
                        "pandas DataFrame/Index and numpy array constructors (see av_pipeline.readers.restricted_pickle)",
                    )
                return super().find_class(module, name)

            def persistent_load(self, pid: Any) -> Any:
                raise LogFormatError(self.source, "pickle", "refused a persistent id: DataFrame pickles have none")

        _RESTRICTED_CLASS = RestrictedUnpickler
    return _RESTRICTED_CLASS


def _capped(text: str, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def restricted_loads(data: bytes, source: str = "<pickle>") -> Any:
    """Unpickle ``data`` with the allow-list (module docstring); ``source`` names it in errors.

    Raises:
        LogFormatError: a refused global or persistent id, or bytes that are not a complete
            pickle (truncated, corrupt); the message names ``source``.
    """
    unpickler = _restricted_unpickler_class()(io.BytesIO(data))
    unpickler.source = source
    try:
        return unpickler.load()
    except LogFormatError:
        raise
    except RecursionError as exc:
        raise LogFormatError(source, "pickle", "nested too deeply to be a DataFrame pickle") from exc
    except Exception as exc:  # noqa: BLE001 - any failure inside a data pickle is a bad file
        # pickle raises UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
        # AttributeError and pandas' NotImplementedError for old layouts: all mean "bad file".
        raise LogFormatError(source, "pickle", f"not a readable pandas pickle: {type(exc).__name__}: {_capped(str(exc), 200)}") from exc


def read_dataframe_pickle(path: str | Path) -> Any:
    """Read a (gzip-compressed if the name ends in ``.gz``) pandas DataFrame pickle safely.

    Args:
        path: a ``.pkl`` or ``.pkl.gz`` file.

    Returns:
        the ``pandas.DataFrame``.

    Raises:
        LogFormatError: unreadable file, truncated or corrupt gzip, a refused global, a
            corrupt pickle, or an object that is not a DataFrame; the message names the file.
        ModuleNotFoundError: pandas is not installed (``pip install 'av-pipeline[pandaset]'``).
    """
    try:
        import pandas
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"reading {path} needs pandas to rebuild the DataFrame: pip install 'av-pipeline[pandaset]'", name="pandas"
        ) from exc
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise LogFormatError(path, None, f"cannot read: {exc}") from exc
    if str(path).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise LogFormatError(path, "gzip", f"not a complete gzip stream (truncated or corrupt): {exc}") from exc
    frame = restricted_loads(raw, str(path))
    if not isinstance(frame, pandas.DataFrame):
        raise LogFormatError(path, "pickle", f"expected a pandas DataFrame, got {type(frame).__name__}")
    return frame


__all__ = ["ALLOWED_PICKLE_GLOBALS", "read_dataframe_pickle", "restricted_loads"]

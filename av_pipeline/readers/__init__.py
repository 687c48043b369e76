"""Drive-log readers behind one interface; see :func:`open_log`."""

from av_pipeline.readers.base import LogReader, available_readers, open_log, register_reader

__all__ = ["LogReader", "available_readers", "open_log", "register_reader"]

"""Edge-case datasets and pre-labels in formats real tools open.

- :func:`export_case`: one mined case as ASAM OpenLABEL 1.0 JSON, KITTI object splits (one per
  box source) and a Foxglove MCAP; :func:`write_manifest`: the dataset's manifest.
- :func:`export_log_prelabels`: a whole log's pre-labels as OpenLABEL or a KITTI split.

Plain functions over records (no Beam). Formats, conventions and how to load each one:
docs/datasets.md.
"""

from av_pipeline.export.api import case_dir_name, export_case, export_log_prelabels
from av_pipeline.export.manifest import read_manifest, write_manifest
from av_pipeline.export.records import CASE_FORMATS, LOG_FORMATS, ExportedCase, ExportedLog, ExportError, IndexedFrame

__all__ = [
    "CASE_FORMATS",
    "ExportError",
    "ExportedCase",
    "ExportedLog",
    "IndexedFrame",
    "LOG_FORMATS",
    "case_dir_name",
    "export_case",
    "export_log_prelabels",
    "read_manifest",
    "write_manifest",
]

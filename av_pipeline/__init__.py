"""av-pipeline: a perception dataset pipeline for autonomous driving.

The library: records, log readers, fusion, voxelization, detector, mining, exporters,
reports, synthetic logs and the ``avp`` CLI. It never imports apache_beam (see beam_jobs).
"""

__version__ = "0.1.0"

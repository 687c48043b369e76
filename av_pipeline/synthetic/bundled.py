"""The synthetic log shipped inside the package: the main job's default input.

It lives in ``av_pipeline/data/synthetic/`` and is exactly what
``write_synthetic_log(BUNDLED_CONFIG, ...)`` writes (foxglove MCAP plus side files), so it
can be checked and regenerated:

>>> from av_pipeline.synthetic import bundled_log
>>> log = bundled_log()
>>> log.mcap.name, log.anomalies.name
('synthetic_default.mcap', 'synthetic_default.anomalies.json')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from av_pipeline.errors import LogFormatError
from av_pipeline.synthetic.config import SimulationConfig

#: Folder of the bundled log inside the installed package.
BUNDLED_LOG_DIR = Path(__file__).resolve().parents[1] / "data" / "synthetic"
#: The configuration that made it.
BUNDLED_CONFIG = SimulationConfig(frames=20, seed=0, log_id="synthetic_default")


@dataclass(frozen=True)
class BundledLog:
    """Paths of the bundled log's files.

    Attributes:
        mcap: the drive log (open it with ``open_log``).
        anomalies, labels, planned_path, meta, rig: the side files (docs/synthetic.md).
    """

    mcap: Path
    anomalies: Path
    labels: Path
    planned_path: Path
    meta: Path
    rig: Path


def bundled_log(folder: str | Path = BUNDLED_LOG_DIR) -> BundledLog:
    """The bundled synthetic log.

    Raises:
        LogFormatError: a file is missing (a broken installation).
    """
    folder = Path(folder)
    stem = BUNDLED_CONFIG.log_id
    log = BundledLog(
        mcap=folder / f"{stem}.mcap",
        anomalies=folder / f"{stem}.anomalies.json",
        labels=folder / f"{stem}.labels.json",
        planned_path=folder / f"{stem}.planned_path.json",
        meta=folder / f"{stem}.meta.json",
        rig=folder / f"{stem}.rig.yaml",
    )
    for path in vars(log).values():
        if not path.is_file():
            raise LogFormatError(path, None, "bundled synthetic log file is missing; regenerate it with `avp simulate --bundled`")
    return log

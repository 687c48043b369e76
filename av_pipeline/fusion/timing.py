"""Which camera image goes with a LiDAR sweep, and how far apart in time they are.

Every camera asked about gets a :class:`CameraMatch`, matched or not: a camera without an
image, or whose nearest image is further from the sweep than the tolerance, is reported
with the reason, never left out.

>>> matches = match_cameras(1_000_000_000, {"front": [950_000_000, 1_010_000_000], "rear": [1_080_000_000]},
...                         tolerance_ns=50_000_000, cameras=["front", "rear", "left"])
>>> [(m.camera, m.skew_ns, m.within_tolerance) for m in matches.values()]
[('front', 10000000, True), ('rear', 80000000, False), ('left', None, False)]
>>> matches["rear"].reason
'nearest image is 80.000 ms after the sweep (tolerance 50.000 ms)'
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np

from av_pipeline.errors import ConfigError, ShapeError

#: Default largest accepted ``|image time - sweep time|``: half the period of a 10 Hz LiDAR.
DEFAULT_TOLERANCE_NS = 50_000_000


@dataclass(frozen=True)
class CameraMatch:
    """The image of one camera chosen for a sweep, or why there is none.

    Attributes:
        camera: camera name.
        sweep_timestamp_ns: the sweep's reference time.
        tolerance_ns: the largest accepted ``|skew_ns|``.
        image_timestamp_ns: time of the nearest image, or ``None`` when the camera had none.
        image_index: position of that image among the candidates given, or ``None``.
        skew_ns: ``image_timestamp_ns - sweep_timestamp_ns`` (negative: the image was taken
            before the sweep time), or ``None``.
        within_tolerance: ``|skew_ns| <= tolerance_ns``.
        reason: ``""`` when within tolerance, else a one-line human reason.
    """

    camera: str
    sweep_timestamp_ns: int
    tolerance_ns: int
    image_timestamp_ns: int | None
    image_index: int | None
    skew_ns: int | None
    within_tolerance: bool
    reason: str = ""

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``CAM_FRONT: image 35.491 ms before the sweep (ok)``."""
        if self.skew_ns is None:
            return f"{self.camera}: {self.reason}"
        side = "after" if self.skew_ns > 0 else "before"
        verdict = "ok" if self.within_tolerance else "rejected"
        return f"{self.camera}: image {abs(self.skew_ns) / 1e6:.3f} ms {side} the sweep ({verdict})"


def match_cameras(
    sweep_timestamp_ns: int,
    image_timestamps_ns: Mapping[str, int | Sequence[int] | np.ndarray],
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    cameras: Iterable[str] | None = None,
) -> Mapping[str, CameraMatch]:
    """Pick, per camera, the image nearest in time to a sweep.

    Args:
        sweep_timestamp_ns: the sweep's reference time (integer ns).
        image_timestamps_ns: camera name -> the candidate image time(s), integer ns.
        tolerance_ns: largest accepted ``|image time - sweep time|``; a camera whose nearest
            image is further away is reported unmatched with the skew.
        cameras: the cameras to report on (e.g. all cameras of the rig), in this order;
            ``None``: the keys of ``image_timestamps_ns``. A camera listed here without
            candidates is reported as ``"no image"``.

    Returns:
        Read-only mapping camera name -> :class:`CameraMatch`, in ``cameras`` order. Of two
        images equally far from the sweep, the earlier one is chosen.

    Raises:
        ShapeError: non-integer times.
        ConfigError: a negative tolerance, or ``image_timestamps_ns`` names a camera that
            ``cameras`` does not list.
    """
    sweep_ns = _integer_ns(sweep_timestamp_ns, "sweep_timestamp_ns")
    tolerance = _integer_ns(tolerance_ns, "tolerance_ns")
    if tolerance < 0:
        raise ConfigError(f"tolerance_ns: expected >= 0, got {tolerance}")
    names = list(image_timestamps_ns) if cameras is None else list(cameras)
    unknown = sorted(set(image_timestamps_ns) - set(names))
    if unknown:
        raise ConfigError(f"image_timestamps_ns: cameras {unknown} are not among the cameras to match {names}")
    matches: dict[str, CameraMatch] = {}
    for name in names:
        candidates = _candidate_times(image_timestamps_ns.get(name, ()), name)
        if len(candidates) == 0:
            matches[name] = CameraMatch(name, sweep_ns, tolerance, None, None, None, False, "no image for this camera")
            continue
        distance = np.abs(candidates - sweep_ns)
        best = int(np.lexsort((candidates, distance))[0])  # nearest; the earlier one on ties
        skew = int(candidates[best] - sweep_ns)
        within = abs(skew) <= tolerance
        reason = ""
        if not within:
            side = "after" if skew > 0 else "before"
            reason = f"nearest image is {abs(skew) / 1e6:.3f} ms {side} the sweep (tolerance {tolerance / 1e6:.3f} ms)"
        matches[name] = CameraMatch(name, sweep_ns, tolerance, int(candidates[best]), best, skew, within, reason)
    return MappingProxyType(matches)


def _integer_ns(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ShapeError(f"{name}: expected an integer number of nanoseconds, got {type(value).__name__} {value!r}")
    return int(value)


def _candidate_times(value: object, camera: str) -> np.ndarray:
    times = np.atleast_1d(np.asarray(value))
    if times.size == 0:
        return np.zeros(0, dtype=np.int64)
    if times.ndim != 1 or times.dtype == bool or not np.issubdtype(times.dtype, np.integer):
        raise ShapeError(
            f"image_timestamps_ns['{camera}']: expected integer nanoseconds (one or a 1-D list), "
            f"got {times.dtype} {times.shape}"
        )
    return times.astype(np.int64)

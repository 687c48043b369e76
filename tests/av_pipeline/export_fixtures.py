"""Inputs for the export tests: small hand-made frames (fast), and a case on three frames of the
bundled synthetic log exported once per test process (loading the log is the slow part)."""

from __future__ import annotations

import atexit
import functools
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.mining.records import Case, Event, ObjectRef
from av_pipeline.records import CameraImage, Frame, LidarSweep, OnboardPerception
from calibration import SE3, CameraModel
from calibration.rig import RigCamera, SensorRig

T0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
#: camera x right, y down, z forward -> ego x forward, y left, z up
EGO_R_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def pitched_rig(pitch_deg: float = 4.0, distortion: tuple[float, ...] = (-0.1, 0.02, 0.001, -0.001, 0.0)) -> SensorRig:
    """A front camera (160 x 120, radtan) pitched down by ``pitch_deg``, a rear pinhole camera and a LiDAR 1.8 m up, turned 2 degrees."""
    pitch = np.deg2rad(pitch_deg)
    ry = np.array([[np.cos(pitch), 0.0, np.sin(pitch)], [0.0, 1.0, 0.0], [-np.sin(pitch), 0.0, np.cos(pitch)]])
    model = CameraModel(160, 120, 100.0, 100.0, 79.5, 59.5, "radtan", distortion)
    camera = RigCamera(model, SE3.from_rotation_matrix(ry @ EGO_R_OPTICAL, [1.5, 0.1, 1.4]))
    ego_R_rear = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # optical axis along ego -x
    rear = RigCamera(CameraModel(80, 60, 50.0, 50.0, 39.5, 29.5), SE3.from_rotation_matrix(ego_R_rear, [-1.0, 0.0, 1.4]))
    return SensorRig(cameras={"rear": rear, "front": camera}, lidars={"top": SE3.from_yaw_translation(np.deg2rad(2.0), [1.0, 0.0, 1.8])})


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def boxes(k: int, *, labels=("car", "pedestrian", "bus"), tracks=(1, 2, -1), offset_m: float = 0.0) -> Cuboids:
    """Three boxes in ``ego`` moving forward with the frame number ``k``: one ahead, one to the left, one behind."""
    centers = np.array([[12.0 + k, 0.5, 0.8], [6.0, 4.0 + 0.1 * k, 0.9], [-15.0, -1.0, 1.6]]) + offset_m
    sizes = np.array([[4.5, 1.9, 1.6], [0.7, 0.7, 1.8], [12.0, 2.6, 3.2]])
    return Cuboids.from_arrays(
        "ego", centers, sizes, [0.1, -2.5, 3.0], list(labels), [0.9, 0.55, 0.4], list(tracks), [120, 40, 7], [str(x) for x in labels]
    )


def tiny_frame(k: int, *, rig: SensorRig | None = None, pose: bool = True, onboard: bool = True, log_id: str = "tiny") -> Frame:
    """Frame ``k``: 50 LiDAR points, a PNG per camera, onboard :func:`boxes`, ego moving 1 m per frame."""
    rig = rig or pitched_rig()
    t = T0_NS + k * PERIOD_NS
    rng = np.random.default_rng(k)
    points = np.column_stack([rng.uniform(-20, 20, (50, 3)), rng.uniform(0, 1, 50)]).astype(np.float32)
    sweep = LidarSweep("top", t, points, ("x", "y", "z", "intensity"))
    images = {name: CameraImage(name, t + 1000, "png", png_bytes(cam.model.width_px, cam.model.height_px, k), cam.model.width_px, cam.model.height_px)
              for name, cam in rig.cameras.items()}  # fmt: skip
    world_SE3_ego = SE3.from_yaw_translation(0.05 * k, [100.0 + k, 20.0, 0.0]) if pose else None
    perception = OnboardPerception(boxes(k)) if onboard else None
    return Frame(log_id, t, rig, world_SE3_ego, {"top": sweep}, images, perception, source_uri=f"{log_id}.mcap")


def tiny_case(first: int = 0, last: int = 2, log_id: str = "tiny", rank: int = 0) -> Case:
    """A case over frames ``first..last`` with two events: a ghost (onboard track 1) and an uncertain shadow box (track 2)."""
    ghost_obj = ObjectRef("onboard", 1, "car", first, (12.0, 0.5, 0.8))
    shadow_obj = ObjectRef("shadow", 2, "pedestrian", last, (6.0, 4.0, 0.9))
    events = (
        Event("ghost", log_id, first, last, T0_NS + first * PERIOD_NS, T0_NS + last * PERIOD_NS, first, 0.8, "car", 12.0, (ghost_obj,),
              "ghost: onboard car #1 at 12 m has 0 LiDAR points for 3 frames"),
        Event("uncertain_shadow", log_id, last, last, T0_NS + last * PERIOD_NS, T0_NS + last * PERIOD_NS, last, 0.5, "pedestrian", 7.2,
              (shadow_obj,), "uncertain_shadow: shadow pedestrian #2 scored 0.55"),
    )  # fmt: skip
    key = (first + last) // 2
    return Case(f"{log_id}@{T0_NS + first * PERIOD_NS}", log_id, first, last, T0_NS + first * PERIOD_NS, T0_NS + last * PERIOD_NS,
                (key,), (T0_NS + key * PERIOD_NS,), 0.9, ("ghost", "uncertain_shadow"), ("car", "pedestrian"), events, rank)  # fmt: skip


def shadow_of(frame: Frame, seed: int) -> Cuboids:
    """A shadow model's view of ``frame``: its onboard boxes shifted and rescored, other track ids, the last box dropped."""
    onboard = frame.onboard.cuboids
    rng = np.random.default_rng(seed)
    keep = np.arange(max(len(onboard) - 1, 0))
    return Cuboids.from_arrays(
        "ego", onboard.centers_m[keep] + rng.normal(0, 0.2, (len(keep), 3)), onboard.sizes_m[keep] * 1.05,
        onboard.yaws_rad[keep] + 0.05, onboard.labels[keep], (onboard.scores[keep] * 0.9).astype(np.float32),
        np.where(onboard.track_ids[keep] >= 0, onboard.track_ids[keep], -1),
    )  # fmt: skip


# ---------------------------------------------------------------------- the bundled log
@dataclass(frozen=True)
class BundledExport:
    """Three frames (5..7) of the bundled synthetic log, their shadow boxes, a case and its export."""

    uri: str
    frames: tuple[Frame, ...]
    shadow: dict[int, Cuboids]
    case: Case
    root: Path
    exported: object  # ExportedCase


@functools.lru_cache(maxsize=1)
def bundled_export() -> BundledExport:
    from av_pipeline.export import export_case
    from av_pipeline.readers import open_log
    from av_pipeline.synthetic import BUNDLED_LOG_DIR

    uri = str(BUNDLED_LOG_DIR / "synthetic_default.mcap")
    with open_log(uri) as log:
        refs = log.list_frames()[5:8]
        frames = tuple(log.load_frame(r) for r in refs)
    shadow = {f.timestamp_ns: shadow_of(f, i) for i, f in enumerate(frames)}
    onboard = frames[0].onboard.cuboids
    track = int(onboard.track_ids[np.argmin(np.abs(onboard.centers_m[:, 0] - 20.0))])
    refs_obj = (ObjectRef("onboard", track, "car", 5, tuple(onboard.centers_m[0])), ObjectRef("shadow", track, "car", 5, tuple(onboard.centers_m[0])))
    event = Event("localization_disagreement", "synthetic_default", 5, 7, refs[0].timestamp_ns, refs[2].timestamp_ns, 6, 0.7, "car", 20.0,
                  refs_obj, f"localization_disagreement: shadow and onboard car #{track} are 1.2 m apart for 3 frames")  # fmt: skip
    case = Case(f"synthetic_default@{refs[0].timestamp_ns}", "synthetic_default", 5, 7, refs[0].timestamp_ns, refs[2].timestamp_ns, (6,),
                (refs[1].timestamp_ns,), 0.7, ("localization_disagreement",), ("car",), (event,), 3)  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="avp-export-"))
    atexit.register(shutil.rmtree, root, True)
    exported = export_case(case, frames, shadow, root, source_uri=uri)
    return BundledExport(uri, frames, shadow, case, root, exported)

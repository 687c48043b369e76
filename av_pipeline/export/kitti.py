"""KITTI object layout (``velodyne/``, ``image_2/``, ``calib/``, ``label_2/``) that KITTI tools
and the product's own ``kitti_object`` reader open.

One split folder per box source: the frames' sweeps, front images and calibration, with the
boxes of one source in ``label_2``. A second source's split hard-links the first one's
sweeps, images and calibration (copies where links are not possible), so each split opens on
its own (``open_log(split)``, OpenPCDet, the KITTI devkit).

What maps where (the full list in docs/datasets.md):

- **Sample id** = the frame's index in its log (``000012``). ``av_pipeline_samples.json``
  beside the folders maps ids to log, frame index and ``timestamp_ns`` (KITTI object samples
  have no time; the reader puts id ``k`` at ``k * 100 ms``).
- **The velodyne frame** has the product's ego axes (x forward, y left, z up) and its origin
  at the frame's first LiDAR: ``velo_SE3_ego`` is a translation only. KITTI tools assume
  exactly this (x forward for the point-cloud range and field-of-view filters, z up with
  the ground about one sensor height below 0, the ``-(ry + pi / 2)`` yaw conversion), whatever
  way the log's LiDAR itself is mounted (nuScenes' top LiDAR has x to the right).
- **velodyne/<id>.bin**: every LiDAR sweep of the frame in that frame, float32 ``x, y, z,
  intensity`` (``intensity`` as each sweep stores it, zeros without one); sweeps are
  concatenated in the frame's LiDAR order.
- **calib/<id>.txt**: ``Tr_velo_to_cam`` = the front camera from the velodyne frame;
  ``R0_rect`` = the rotation into KITTI's rectified view, level and looking along velodyne
  +x (:func:`~av_pipeline.export.rectify.kitti_rect_R_camera`); ``P0`` .. ``P3`` = ``[K | 0]``
  of the front camera (one camera: KITTI's other cameras are not written);
  ``Tr_imu_to_velo`` = ``velo_SE3_ego`` (the ego frame plays KITTI's IMU).
- **image_2/<id>.png**: the front camera's image resampled into that rectified view,
  undistorted, with the camera's ``K`` (:mod:`~av_pipeline.export.rectify`).
- **label_2/<id>.txt**: one line per box, 16 columns: ``type truncated occluded alpha
  left top right bottom h w l x y z ry score``; location = bottom centre in the rectified
  camera frame, geometry and score as shortest round-trip decimals. ``type`` is the KITTI
  name of the class (:data:`KITTI_TYPES`), ``truncated`` the projected footprint outside the
  image (1 for boxes out of view), ``occluded`` 3 ("unknown"), the 2D box the projection's
  visible part (``-1 -1 -1 -1`` out of view). Every box is written, in view or not. A frame
  without a result for the source (no shadow model run, no onboard perception) gets no
  label file; a result with no box gets an empty one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from av_pipeline.boxes import Cuboids, cuboids_to_kitti_camera_boxes
from av_pipeline.export.records import ExportError, IndexedFrame, atomic_write_bytes, atomic_write_text
from av_pipeline.export.rectify import kitti_rect_R_camera, rectify_maps, remap_bilinear
from av_pipeline.records import Frame
from calibration import SE3
from calibration.camera import CameraModel
from calibration.errors import CalibrationError
from calibration.formats._common import format_float
from calibration.formats.kitti_object import KittiObjectCalib, format_kitti_object_calib

#: Product class -> KITTI ``label_2`` type; other classes are written as ``Misc``.
KITTI_TYPES = {"car": "Car", "van": "Van", "truck": "Truck", "pedestrian": "Pedestrian", "cyclist": "Cyclist"}
#: KITTI's own type names: a box whose ``source_labels`` holds one of them keeps it.
KITTI_SOURCE_TYPES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
#: The side file that maps sample ids to frames.
SAMPLES_FILE = "av_pipeline_samples.json"


def front_camera(frame: Frame) -> str:
    """The rig camera whose optical axis points most along ego +x (ties: first by name).

    Raises:
        ExportError: the rig has no camera.
    """
    cameras = frame.rig.cameras
    if not cameras:
        raise ExportError(f"frame {frame.log_id}@{frame.timestamp_ns}", "rig.cameras", "no camera: KITTI's image_2 and P2 need one")
    return max(sorted(cameras), key=lambda name: float(cameras[name].ego_SE3_camera.rotation[0, 2]))


def kitti_type(label: str, source_label: str | None) -> str:
    """The ``label_2`` type of a product class (``"car"`` -> ``"Car"``; KITTI source names kept)."""
    if source_label in KITTI_SOURCE_TYPES:
        return source_label
    return KITTI_TYPES.get(label, "Misc")


def velo_SE3_ego(frame: Frame, lidar: str) -> SE3:
    """The export's velodyne frame from ``ego``: ego axes, origin at ``lidar`` (module docstring)."""
    return SE3(np.eye(3), -np.asarray(frame.rig.lidars[lidar].translation, dtype=np.float64))


def kitti_calibration(frame: Frame, camera: str, lidar: str) -> KittiObjectCalib:
    """The KITTI object calibration of ``frame``'s ``camera``, with the velodyne frame at
    ``lidar`` (module docstring).

    Raises:
        ExportError: the camera or LiDAR is not in the rig, or the camera looks more than
            :data:`~av_pipeline.export.rectify.MAX_RECTIFY_ANGLE_DEG` away from ego +x.
    """
    where = f"frame {frame.log_id}@{frame.timestamp_ns}"
    if camera not in frame.rig.cameras:
        raise ExportError(where, "rig.cameras", f"no camera {camera!r} in the rig {sorted(frame.rig.cameras)}")
    if lidar not in frame.rig.lidars:
        raise ExportError(where, "rig.lidars", f"no LiDAR {lidar!r} in the rig {sorted(frame.rig.lidars)}")
    velo_from_ego = velo_SE3_ego(frame, lidar)
    velo_SE3_camera = velo_from_ego.compose(frame.rig.cameras[camera].ego_SE3_camera)
    try:
        rect_R_camera = kitti_rect_R_camera(velo_SE3_camera.rotation)
    except CalibrationError as exc:
        raise ExportError(where, f"rig.cameras[{camera!r}]", str(exc)) from exc
    model = frame.rig.cameras[camera].model
    projection = np.hstack([model.K, np.zeros((3, 1))])
    return KittiObjectCalib({key: projection for key in ("P0", "P1", "P2", "P3")}, rect_R_camera, velo_SE3_camera.inverse(), velo_from_ego)


def label_lines(boxes_velo: Cuboids, calib: KittiObjectCalib, image_size_px: tuple[int, int]) -> list[str]:
    """``label_2`` lines (16 columns) of boxes in the velodyne frame of ``calib``.

    Args:
        boxes_velo: ``(K,)`` cuboids in the velodyne frame (centre, ``l, w, h`` in m, yaw in rad).
        calib: the sample's calibration (``R0_rect``, ``Tr_velo_to_cam``, ``P2``).
        image_size_px: ``(width, height)`` of ``image_2``, for the 2D boxes and truncation.
    """
    from av_pipeline.fusion.cuboids import project_cuboids

    if not len(boxes_velo):
        return []
    rect_SE3_velo = calib.rect_SE3_velo
    locations, hwl, ry = cuboids_to_kitti_camera_boxes(boxes_velo, rect_SE3_velo, height_axis="frame_z")
    P2 = calib.P["P2"]
    rectified = CameraModel(image_size_px[0], image_size_px[1], P2[0, 0], P2[1, 1], P2[0, 2], P2[1, 2])
    projected = project_cuboids(boxes_velo, rectified, rect_SE3_velo, name="image_2")
    alpha = np.mod(ry - np.arctan2(locations[:, 0], locations[:, 2]) + np.pi, 2 * np.pi) - np.pi
    source = boxes_velo.source_labels
    lines = []
    for i in range(len(boxes_velo)):
        box2d = projected.box2d_px[i] if projected.visible[i] else np.full(4, -1.0)
        truncated = float(projected.truncation[i]) if projected.visible[i] else 1.0
        name = kitti_type(str(boxes_velo.labels[i]), None if source is None else str(source[i]))
        numbers = [*hwl[i], *locations[i], ry[i], float(boxes_velo.scores[i])]
        lines.append(f"{name} {truncated:.2f} 3 {alpha[i]:.6f} " + " ".join(f"{v:.2f}" for v in box2d) + " " + " ".join(format_float(v) for v in numbers))
    return lines


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


class KittiSplitWriter:
    """Write frames into one KITTI object split folder (module docstring).

    Args:
        split_dir: the folder that receives ``velodyne/``, ``image_2/``, ``calib/``, ``label_2/``.
        camera: the rig camera written as ``image_2`` (default: :func:`front_camera` of the
            first frame).
        link_from: another split written for the same frames: its sweeps, images and
            calibration are linked instead of written again.
    """

    def __init__(self, split_dir: str | Path, *, camera: str | None = None, link_from: str | Path | None = None) -> None:
        self.split_dir = Path(split_dir)
        self.camera = camera
        self.link_from = None if link_from is None else Path(link_from)
        self.samples: list[dict[str, Any]] = []
        self._maps: tuple[tuple, tuple[np.ndarray, np.ndarray]] | None = None
        self._log: tuple[str, str] = ("", "")

    def write(self, item: IndexedFrame, boxes_ego: Cuboids | None) -> str:
        """Write one frame with ``boxes_ego`` (``None``: no label file); returns its sample id.

        Raises:
            ExportError: no LiDAR (or a sweep without extrinsics), no camera, a camera that
                does not look forward, no image of the camera, boxes not in ``ego``.
        """
        frame = item.frame
        sample = f"{item.index:06d}"
        if not frame.lidars:
            raise ExportError(item.where, "lidars", "no LiDAR sweep: KITTI's velodyne/ needs one")
        lidar = next(iter(frame.lidars))
        unknown = sorted(set(frame.lidars) - set(frame.rig.lidars))
        if unknown:
            raise ExportError(item.where, "lidars", f"sweeps {unknown} have no extrinsics in the rig {sorted(frame.rig.lidars)}")
        self.camera = self.camera or front_camera(frame)
        calib = kitti_calibration(frame, self.camera, lidar)
        if boxes_ego is not None and boxes_ego.frame != "ego":
            raise ExportError(item.where, "boxes", f"expected cuboids in 'ego', got frame {boxes_ego.frame!r}")
        files = {"velodyne": f"velodyne/{sample}.bin", "image_2": f"image_2/{sample}.png", "calib": f"calib/{sample}.txt"}
        if self.link_from is not None:
            for relative in files.values():
                source = self.link_from / relative
                if not source.is_file():
                    raise ExportError(item.where, relative, f"not in the split to link from ({self.link_from})")
                _link_or_copy(source, self.split_dir / relative)
        else:
            if self.camera not in frame.images:
                raise ExportError(item.where, f"images[{self.camera!r}]", f"no image of camera {self.camera!r} (images: {sorted(frame.images)})")
            atomic_write_bytes(self.split_dir / files["velodyne"], _velodyne_bytes(frame, calib.velo_SE3_imu))
            atomic_write_bytes(self.split_dir / files["image_2"], self._image_png(frame, calib))
            atomic_write_text(self.split_dir / files["calib"], format_kitti_object_calib(calib))
        model = frame.rig.cameras[self.camera].model
        if boxes_ego is not None:
            boxes_velo = boxes_ego.transform(calib.velo_SE3_imu, "velodyne")
            lines = label_lines(boxes_velo, calib, (model.width_px, model.height_px))
            atomic_write_text(self.split_dir / f"label_2/{sample}.txt", "".join(line + "\n" for line in lines))
        else:
            (self.split_dir / "label_2").mkdir(parents=True, exist_ok=True)
        self._log = (frame.log_id, self._log[1] or frame.source_uri)
        self.samples.append({"sample_id": sample, "frame_index": item.index, "timestamp_ns": frame.timestamp_ns,
                             "boxes": None if boxes_ego is None else len(boxes_ego)})  # fmt: skip
        return sample

    def _image_png(self, frame: Frame, calib: KittiObjectCalib) -> bytes:
        import io

        from PIL import Image

        camera = frame.rig.cameras[self.camera]
        image = frame.images[self.camera]
        key = (camera.model, calib.R0_rect.tobytes())
        if camera.model.distortion_model == "pinhole" and np.allclose(calib.R0_rect, np.eye(3), atol=1e-12):
            if image.encoding == "png":
                return image.data
            rectified = image.decode()
        else:
            if self._maps is None or self._maps[0] != key:
                self._maps = (key, rectify_maps(camera.model, calib.R0_rect))
            rectified = remap_bilinear(image.decode(), *self._maps[1])
        buffer = io.BytesIO()
        Image.fromarray(rectified).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def close(self, source_uri: str = "") -> Path:
        """Write ``av_pipeline_samples.json`` (sample id -> log, frame index, time); returns the split folder."""
        document = {"log_id": self._log[0], "source_uri": source_uri or self._log[1], "camera": self.camera, "samples": self.samples}
        atomic_write_text(self.split_dir / SAMPLES_FILE, json.dumps(document, indent=1) + "\n")
        return self.split_dir


def _velodyne_bytes(frame: Frame, velo_from_ego: SE3) -> bytes:
    """Every sweep of ``frame`` in the velodyne frame: ``(N, 4)`` little-endian float32 ``x, y, z, intensity``."""
    parts = []
    for name, sweep in frame.lidars.items():
        points = np.zeros((sweep.num_points, 4), dtype="<f4")
        points[:, :3] = velo_from_ego.compose(frame.rig.lidars[name]).transform_points(sweep.xyz.astype(np.float64))
        if "intensity" in sweep.columns:
            points[:, 3] = sweep.column("intensity")
        parts.append(points)
    return np.concatenate(parts).tobytes()


__all__ = ["KITTI_TYPES", "KittiSplitWriter", "SAMPLES_FILE", "front_camera", "kitti_calibration", "kitti_type", "label_lines", "velo_SE3_ego"]

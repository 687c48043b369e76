"""KITTI object export: the split reads back with the product's ``kitti_object`` reader (same
boxes, points, labels, scores), the calibration file and the rectified image agree with
OpenCV's projection of the original camera, the label lines convert the way OpenPCDet
converts them, and the rectification maps match ``cv2.initUndistortRectifyMap`` +
``cv2.remap``."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from av_pipeline.boxes import Cuboids
from av_pipeline.export import export_case, export_log_prelabels
from av_pipeline.export.kitti import SAMPLES_FILE
from av_pipeline.export.rectify import kitti_rect_R_camera, rectify_maps, remap_bilinear
from av_pipeline.readers import open_log
from calibration import SE3, CameraModel
from tests.av_pipeline.export_fixtures import EGO_R_OPTICAL, boxes, bundled_export, tiny_case, tiny_frame

#: What the KITTI reader's taxonomy makes of the types the exporter writes (bus -> Misc -> other).
READ_BACK_LABEL = {"car": "car", "pedestrian": "pedestrian", "bus": "other", "van": "van", "truck": "truck", "cyclist": "cyclist"}


def _calib_matrices(path) -> dict[str, np.ndarray]:
    """The calib file parsed with plain numpy, as the KITTI devkit reads it (``key: 12 or 9 numbers``)."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, values = line.partition(":")
        numbers = np.array([float(v) for v in values.split()])
        out[key] = numbers.reshape(3, 3) if key == "R0_rect" else numbers.reshape(3, 4)
    return out


def _se3(matrix_3x4: np.ndarray) -> SE3:
    return SE3.from_matrix(np.vstack([matrix_3x4, [0.0, 0.0, 0.0, 1.0]]))


def _points_ego(frame) -> np.ndarray:
    (name,) = frame.lidars
    return frame.rig.lidars[name].transform_points(frame.lidars[name].xyz.astype(np.float64))


def _assert_same_boxes(got: Cuboids, want_ego: Cuboids, velo_SE3_ego: SE3) -> None:
    """``got`` (read back, velodyne frame) against ``want_ego`` brought to the velodyne frame, box by box, in order."""
    want = want_ego.transform(velo_SE3_ego, got.frame)
    assert len(got) == len(want)
    np.testing.assert_allclose(got.centers_m, want.centers_m, atol=1e-6)
    np.testing.assert_allclose(got.sizes_m, want.sizes_m, atol=1e-6)
    np.testing.assert_allclose(np.angle(np.exp(1j * (got.yaws_rad - want.yaws_rad))), 0.0, atol=1e-6)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
    assert got.labels.tolist() == [READ_BACK_LABEL[label] for label in want_ego.labels]


def _read_split(split):
    """``{sample_id: frame}`` of a split, read with the product's reader (picked by sniffing)."""
    with open_log(str(split)) as log:
        assert log.name == "kitti_object"
        return {ref.sample: log.load_frame(ref) for ref in log.list_frames()}


def _check_split(split, frames, boxes_by_time) -> None:
    read = _read_split(split)
    samples = json.loads((split / SAMPLES_FILE).read_text())["samples"]
    assert [s["sample_id"] for s in samples] == sorted(read)
    for sample, frame in zip(samples, frames):
        assert sample["timestamp_ns"] == frame.timestamp_ns
        back = read[sample["sample_id"]]
        velo_SE3_ego = _se3(_calib_matrices(split / "calib" / f"{sample['sample_id']}.txt")["Tr_imu_to_velo"])
        # the points pin the frame: velodyne points read back = the sweep in ego, through Tr_imu_to_velo
        np.testing.assert_allclose(back.lidars["velodyne"].xyz, velo_SE3_ego.transform_points(_points_ego(frame)), atol=1e-4)
        np.testing.assert_array_equal(back.lidars["velodyne"].column("intensity"), next(iter(frame.lidars.values())).column("intensity"))
        want = boxes_by_time.get(frame.timestamp_ns)
        if want is None:
            assert back.annotations is None and not (split / "label_2" / f"{sample['sample_id']}.txt").exists()
        else:
            _assert_same_boxes(back.annotations, want, velo_SE3_ego)


def test_hand_made_case_reads_back_with_the_kitti_object_reader(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {frames[0].timestamp_ns: boxes(0, offset_m=0.3), frames[2].timestamp_ns: Cuboids.empty("ego")}  # frame 1: no shadow result
    exported = export_case(tiny_case(0, 2), frames, shadow, tmp_path, formats=("kitti",))
    assert exported.frames_without_shadow == (1,) and exported.num_boxes == {"shadow": 3, "onboard": 9}
    _check_split(tmp_path / exported.paths["kitti_shadow"], frames, shadow)
    _check_split(tmp_path / exported.paths["kitti_onboard"], frames, {f.timestamp_ns: f.onboard.cuboids for f in frames})
    # an empty result is an empty label file (nothing here), unlike a missing one (not looked at)
    assert (tmp_path / exported.paths["kitti_shadow"] / "label_2" / "000002.txt").read_text() == ""


def test_calibration_and_image_agree_with_opencv_projection_of_the_original_camera(tmp_path):
    """A rectified pixel's ray, taken through the written calib to the velodyne frame and then
    projected into the original (distorted, pitched) camera by ``cv2.projectPoints``, lands where
    image_2 took its value from."""
    frame = tiny_frame(0)
    exported = export_log_prelabels([frame], {frame.timestamp_ns: boxes(0)}, tmp_path, "kitti")
    calib = _calib_matrices(exported.path / "calib" / "000000.txt")
    rect_SE3_velo = SE3.from_rotation_matrix(calib["R0_rect"]).compose(_se3(calib["Tr_velo_to_cam"]))
    ego_SE3_velo = _se3(calib["Tr_imu_to_velo"]).inverse()
    camera = frame.rig.cameras["front"]
    K = calib["P2"][:, :3]
    u, v = np.meshgrid(np.arange(4, 156, 7.0), np.arange(4, 116, 7.0))
    rays_rect = np.linalg.solve(K, np.stack([u.ravel(), v.ravel(), np.ones(u.size)]))
    points_velo = rect_SE3_velo.inverse().transform_points(8.0 * rays_rect.T)
    camera_SE3_ego = camera.ego_SE3_camera.inverse()
    points_camera = camera_SE3_ego.compose(ego_SE3_velo).transform_points(points_velo)
    pixels, _ = cv2.projectPoints(points_camera, np.zeros(3), np.zeros(3), camera.model.K, np.array(camera.model.distortion))
    original = np.asarray(Image.open(io.BytesIO(frame.images["front"].data)).convert("RGB"))
    map_u, map_v = pixels[:, 0, 0].astype(np.float32)[:, None], pixels[:, 0, 1].astype(np.float32)[:, None]
    expected = cv2.remap(original, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[:, 0]
    image_2 = np.asarray(Image.open(exported.path / "image_2" / "000000.png"))
    got = image_2[v.ravel().astype(int), u.ravel().astype(int)]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    # and P2 @ R0_rect @ Tr_velo_to_cam maps those points back onto their rectified pixels
    homogeneous = calib["P2"] @ np.vstack([rect_SE3_velo.transform_points(points_velo).T, np.ones(len(points_velo))])
    np.testing.assert_allclose(homogeneous[:2] / homogeneous[2], [u.ravel(), v.ravel()], atol=1e-9)


def _openpcdet_boxes_lidar(label_path, calib) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """OpenPCDet's reading of a label file (``object3d_kitti.Object3d`` + ``boxes3d_kitti_camera_to_lidar``):
    ``(K, 7)`` ``x, y, z, l, w, h, yaw`` in the velodyne frame, ``(K,)`` scores, types."""
    rows = [line.split() for line in label_path.read_text().splitlines()]
    h, w, l = (np.array([float(r[i]) for r in rows]) for i in (8, 9, 10))
    loc = np.array([[float(r[11]), float(r[12]), float(r[13])] for r in rows])
    ry = np.array([float(r[14]) for r in rows])
    scores = np.array([float(r[15]) if len(r) == 16 else -1.0 for r in rows])
    # rect_to_lidar: pts_rect_hom @ inv((R0_ext @ V2C_ext).T)
    R0_ext, V2C_ext = np.eye(4), np.eye(4)
    R0_ext[:3, :3], V2C_ext[:3] = calib["R0_rect"], calib["Tr_velo_to_cam"]
    xyz = (np.hstack([loc, np.ones((len(loc), 1))]) @ np.linalg.inv((R0_ext @ V2C_ext).T))[:, :3]
    xyz[:, 2] += h / 2
    return np.column_stack([xyz, l, w, h, -(ry + np.pi / 2)]), scores, [r[0] for r in rows]


KITTI_NAME = {"car": "Car", "van": "Van", "pedestrian": "Pedestrian", "cyclist": "Cyclist", "truck": "Truck", "bus": "Misc"}


def _check_openpcdet(split, frames, boxes_by_time) -> None:
    """Every label file, read and converted as OpenPCDet does, gives the exported boxes in the velodyne frame."""
    for sample in json.loads((split / SAMPLES_FILE).read_text())["samples"]:
        want_ego = boxes_by_time.get(sample["timestamp_ns"])
        if want_ego is None or not len(want_ego):
            continue
        calib = _calib_matrices(split / "calib" / f"{sample['sample_id']}.txt")
        got, scores, types = _openpcdet_boxes_lidar(split / "label_2" / f"{sample['sample_id']}.txt", calib)
        want = want_ego.transform(_se3(calib["Tr_imu_to_velo"]), "velodyne")
        np.testing.assert_allclose(got[:, :3], want.centers_m, atol=1e-6)
        np.testing.assert_allclose(got[:, 3:6], want.sizes_m, atol=1e-6)
        np.testing.assert_allclose(np.angle(np.exp(1j * (got[:, 6] - want.yaws_rad))), 0.0, atol=1e-6)
        np.testing.assert_allclose(scores, want.scores, atol=1e-6)
        assert types == [KITTI_NAME[label] for label in want_ego.labels]


def test_hand_made_labels_convert_the_way_openpcdet_does(tmp_path):
    """The LiDAR of the hand-made rig is turned 2 degrees: the velodyne frame keeps the ego axes,
    so OpenPCDet's ``-(ry + pi / 2)`` is exact, and points sit where the rig puts them."""
    frames = [tiny_frame(k) for k in range(2)]
    exported = export_log_prelabels(iter(frames), {f.timestamp_ns: boxes(k) for k, f in enumerate(frames)}, tmp_path, "kitti")
    _check_openpcdet(exported.path, frames, {f.timestamp_ns: boxes(k) for k, f in enumerate(frames)})
    calib = _calib_matrices(exported.path / "calib" / "000000.txt")
    np.testing.assert_allclose(calib["Tr_imu_to_velo"], np.hstack([np.eye(3), [[-1.0], [0.0], [-1.8]]]), atol=1e-12)


@pytest.mark.slow
def test_bundled_case_reads_back_and_converts_the_way_openpcdet_does():
    bundle = bundled_export()
    frames = bundle.frames
    shadow_split = bundle.root / bundle.exported.paths["kitti_shadow"]
    onboard_split = bundle.root / bundle.exported.paths["kitti_onboard"]
    _check_split(shadow_split, frames, bundle.shadow)
    _check_split(onboard_split, frames, {f.timestamp_ns: f.onboard.cuboids for f in frames})
    _check_openpcdet(shadow_split, frames, bundle.shadow)
    _check_openpcdet(onboard_split, frames, {f.timestamp_ns: f.onboard.cuboids for f in frames})
    for k in (5, 6, 7):  # shared sensor files are linked (or copied) byte for byte between the two splits
        for relative in (f"velodyne/{k:06d}.bin", f"image_2/{k:06d}.png", f"calib/{k:06d}.txt"):
            assert (shadow_split / relative).read_bytes() == (onboard_split / relative).read_bytes()


def _rx(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _smooth_image(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    channels = [127 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0), 2.0 * xx, 255 - 2.0 * yy]
    return np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "model",
    [
        CameraModel(160, 120, 100.0, 100.0, 79.5, 59.5, "radtan", (-0.25, 0.08, 0.002, -0.0015, -0.01)),
        CameraModel(160, 120, 70.0, 70.0, 72.0, 60.0, "fisheye", (0.3, -0.01, 0.002, -0.0005)),
    ],
    ids=["radtan", "fisheye"],
)
def test_rectify_maps_and_remap_match_opencv(model):
    yaw, pitch, roll = np.deg2rad([3.0, 6.0, 1.0])  # a camera turned a little every way
    ego_R_camera = SE3.from_yaw_translation(yaw, [0.0, 0.0, 0.0]).rotation @ _ry(pitch) @ _rx(roll) @ EGO_R_OPTICAL
    rect_R_camera = kitti_rect_R_camera(ego_R_camera)  # velodyne axes = ego axes
    np.testing.assert_allclose(ego_R_camera @ rect_R_camera.T, EGO_R_OPTICAL, atol=1e-12)  # the rectified view is KITTI's
    map_u, map_v = rectify_maps(model, rect_R_camera)
    size = (model.width_px, model.height_px)
    D = np.array(model.distortion)
    if model.distortion_model == "fisheye":
        cv_u, cv_v = cv2.fisheye.initUndistortRectifyMap(model.K, D, rect_R_camera, model.K, size, cv2.CV_32FC1)
    else:
        cv_u, cv_v = cv2.initUndistortRectifyMap(model.K, D, rect_R_camera, model.K, size, cv2.CV_32FC1)
    finite = np.isfinite(map_u) & np.isfinite(map_v)
    assert finite.mean() > 0.99
    np.testing.assert_allclose(map_u[finite], cv_u[finite], atol=2e-3)
    np.testing.assert_allclose(map_v[finite], cv_v[finite], atol=2e-3)
    # some rectified pixels must look outside the source image, so the border rule is exercised too
    outside = (cv_u < 0) | (cv_u > model.width_px - 1) | (cv_v < 0) | (cv_v > model.height_px - 1)
    assert outside.any()
    image = _smooth_image(model.height_px, model.width_px)
    ours = remap_bilinear(image, np.where(finite, map_u, cv_u), np.where(finite, map_v, cv_v))
    theirs = cv2.remap(image, cv_u, cv_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    gray = remap_bilinear(image[..., 0], cv_u, cv_v)
    assert gray.shape == map_u.shape and np.abs(gray.astype(int) - theirs[..., 0].astype(int)).max() <= 1

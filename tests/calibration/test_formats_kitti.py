"""KITTI object and raw calibration files: round trips, bad input, and the real samples."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from calibration import SE3, CalibrationFileError
from calibration.formats import (
    KITTI_CAMERAS,
    KittiObjectCalib,
    KittiRawCalib,
    KittiRawCamera,
    KittiRawCamToCam,
    KittiRawImuToVelo,
    KittiRawVeloToCam,
    format_kitti_object_calib,
    parse_kitti_object_calib,
    parse_kitti_raw_cam_to_cam,
    parse_kitti_raw_velo_to_cam,
    read_kitti_object_calib,
    read_kitti_raw_calib,
    write_kitti_object_calib,
    write_kitti_raw_calib,
)

KITTI_IMAGE_SIZE = (1242, 375)


# ---------------------------------------------------------------------- helpers
def random_se3(rng: np.random.Generator, scale_m: float = 1.0) -> SE3:
    q = rng.normal(size=4)
    return SE3.from_wxyz(q / np.linalg.norm(q), rng.normal(scale=scale_m, size=3))


def kitti_like_P(baseline_px: float, offsets: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
    return np.hstack([K, np.array([[baseline_px], [offsets[0]], [offsets[1]]])])


def synthetic_object_calib(seed: int = 0) -> KittiObjectCalib:
    rng = np.random.default_rng(seed)
    P = {"P0": kitti_like_P(0.0), "P1": kitti_like_P(-387.5744), "P2": kitti_like_P(44.85728, (0.2163791, 0.002745884)),
         "P3": kitti_like_P(-339.5242, (2.199936, 0.002729905))}
    rect = SE3.from_wxyz([1.0, 0.002, -0.004, 0.005]).rotation
    return KittiObjectCalib(P, rect, random_se3(rng), random_se3(rng))


def project_with_P(P: np.ndarray, rect_SE3_velo: SE3, points_velo: np.ndarray) -> np.ndarray:
    """Independent reference: pixels = P @ [rect_SE3_velo] @ x (homogeneous)."""
    M = P @ rect_SE3_velo.as_matrix()
    h = np.c_[points_velo, np.ones(len(points_velo))] @ M.T
    return h[:, :2] / h[:, 2:]


def project_with_rig_camera(camera, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection through a rig camera's K and extrinsic: (uv (N, 2), depth (N,))."""
    points_camera = camera.ego_SE3_camera.inverse().transform_points(points_ego)
    h = points_camera @ camera.model.K.T
    return h[:, :2] / h[:, 2:], points_camera[:, 2]


def in_image(uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return (uv[:, 0] >= -0.5) & (uv[:, 0] < size[0] - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < size[1] - 0.5)


def raw_matrices(path: Path) -> dict[str, np.ndarray]:
    """The calib file's numbers exactly as printed, parsed without the reader under test."""
    out = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, values = line.split(":", 1)
            out[key] = np.array(values.split(), dtype=np.float64)
    return out


def kitti_boxes_to_lidar(locations, dims_hwl, ry, lidar_SE3_rect: SE3):
    """KITTI camera boxes (bottom centre, h w l, ry about camera +y) -> (centres, l w h, yaw about +z).

    av_pipeline.boxes.kitti_camera_boxes_to_cuboids does the same inside the product; this
    copy keeps the calibration tests independent of av_pipeline.
    """
    centres_rect = np.array(locations, dtype=np.float64)
    centres_rect[:, 1] -= dims_hwl[:, 0] / 2.0  # camera y points down
    heading_rect = np.stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)], axis=1)
    heading = lidar_SE3_rect.rotate_vectors(heading_rect)
    return lidar_SE3_rect.transform_points(centres_rect), dims_hwl[:, [2, 1, 0]], np.arctan2(heading[:, 1], heading[:, 0])


def count_points_in_boxes(points: np.ndarray, centres: np.ndarray, sizes_lwh: np.ndarray, yaws: np.ndarray) -> list[int]:
    counts = []
    for centre, size, yaw in zip(centres, sizes_lwh, yaws):
        d = points[:, :3] - centre
        local_x = np.cos(yaw) * d[:, 0] + np.sin(yaw) * d[:, 1]
        local_y = -np.sin(yaw) * d[:, 0] + np.cos(yaw) * d[:, 1]
        inside = (np.abs(local_x) <= size[0] / 2) & (np.abs(local_y) <= size[1] / 2) & (np.abs(d[:, 2]) <= size[2] / 2)
        counts.append(int(inside.sum()))
    return counts


# ---------------------------------------------------------------------- object calib: round trip
def test_object_calib_round_trip(tmp_path):
    calib = synthetic_object_calib()
    path = tmp_path / "000042.txt"
    write_kitti_object_calib(calib, path)
    back = read_kitti_object_calib(path)
    for key in KITTI_CAMERAS:
        np.testing.assert_array_equal(back.P[key], calib.P[key])
    np.testing.assert_array_equal(back.R0_rect, calib.R0_rect)
    assert back.cam0_SE3_velo.allclose(calib.cam0_SE3_velo, atol_rad=1e-12, atol_m=1e-12)
    assert back.velo_SE3_imu.allclose(calib.velo_SE3_imu, atol_rad=1e-12, atol_m=1e-12)
    assert back.path == str(path)
    # written exactly: a second pass gives the same text
    assert format_kitti_object_calib(back) == path.read_text()


def test_object_calib_without_imu_round_trips():
    calib = synthetic_object_calib()
    calib = KittiObjectCalib(calib.P, calib.R0_rect, calib.cam0_SE3_velo, None)
    text = format_kitti_object_calib(calib)
    assert "Tr_imu_to_velo" not in text
    back = parse_kitti_object_calib(text)
    assert back.velo_SE3_imu is None
    assert not any(note.field == "Tr_imu_to_velo" for note in back.unrepresented)


def test_object_calib_reads_tracking_spelling():
    calib = synthetic_object_calib()
    text = format_kitti_object_calib(calib)
    tracking = (
        text.replace("R0_rect:", "R_rect").replace("Tr_velo_to_cam:", "Tr_velo_cam").replace("Tr_imu_to_velo:", "Tr_imu_velo")
    )
    back = parse_kitti_object_calib(tracking)
    np.testing.assert_array_equal(back.R0_rect, calib.R0_rect)
    assert back.cam0_SE3_velo.allclose(calib.cam0_SE3_velo, atol_rad=1e-12, atol_m=1e-12)


def test_object_rig_reproduces_every_projection_matrix():
    calib = synthetic_object_calib(seed=3)
    rig = calib.to_rig(KITTI_IMAGE_SIZE)
    assert sorted(rig.cameras) == ["image_0", "image_1", "image_2", "image_3"]
    assert rig.lidars["velodyne"] == SE3.identity()
    rng = np.random.default_rng(1)
    points_rect = np.c_[rng.uniform(-10, 10, 500), rng.uniform(-2, 2, 500), rng.uniform(3, 60, 500)]
    points_velo = calib.rect_SE3_velo.inverse().transform_points(points_rect)
    for key, name in KITTI_CAMERAS.items():
        uv, depth = project_with_rig_camera(rig.cameras[name], points_velo)
        np.testing.assert_allclose(uv, project_with_P(calib.P[key], calib.rect_SE3_velo, points_velo), atol=1e-6)
        assert np.all(depth > 0)
    # P2 = K [I | t]: camera 2 sits at -t in the rectified frame, about 6 cm left of camera 0
    rect_SE3_cam2 = calib.rect_SE3_velo.compose(rig.cameras["image_2"].ego_SE3_camera)
    t = np.linalg.solve(calib.P["P2"][:, :3], calib.P["P2"][:, 3])
    np.testing.assert_allclose(rect_SE3_cam2.translation, -t, atol=1e-12)
    np.testing.assert_allclose(rect_SE3_cam2.rotation, np.eye(3), atol=1e-12)
    assert -0.07 < rect_SE3_cam2.translation[0] < -0.05


def test_object_calib_reports_projection_matrices_a_rig_cannot_hold():
    calib = synthetic_object_calib()
    text = format_kitti_object_calib(calib)
    skewed = kitti_like_P(-339.5242)
    skewed[0, 1] = 0.5
    other_K = kitti_like_P(-387.5744)
    other_K[0, 0] = 700.0
    lines = {line.split(":")[0]: line for line in text.splitlines()}
    lines["P3"] = "P3: " + _numbers(skewed)
    lines["P1"] = "P1: " + _numbers(other_K)
    back = parse_kitti_object_calib("\n".join(lines.values()))
    notes = {note.field: note.reason for note in back.unrepresented}
    assert "skew" in notes["P3"] and "left out" in notes["P3"]
    assert "differs from P0" in notes["P1"]
    rig = back.to_rig(KITTI_IMAGE_SIZE)
    assert "image_3" not in rig.cameras
    assert rig.cameras["image_1"].model.fx_px == 700.0


def test_object_calib_reports_unknown_keys():
    text = format_kitti_object_calib(synthetic_object_calib()) + "Tr_cam_to_road: 1 2 3\n"
    notes = parse_kitti_object_calib(text).unrepresented
    assert any(note.field == "Tr_cam_to_road" and "ignored" in note.reason for note in notes)


# ---------------------------------------------------------------------- object calib: bad input
def _replace_line(text: str, key: str, new_line: str | None) -> str:
    lines = [line for line in text.splitlines() if not line.startswith(f"{key}:")]
    return "\n".join(lines + ([new_line] if new_line is not None else []))


def _numbers(values) -> str:
    return " ".join(repr(float(v)) for v in np.ravel(values))


@pytest.mark.parametrize(
    "key, new_line, match",
    [
        ("Tr_velo_to_cam", "Tr_velo_to_cam: " + _numbers(range(11)), r"calib/000001.txt: field 'Tr_velo_to_cam': expected 12 numbers, got 11"),
        ("P2", None, r"calib/000001.txt: field 'P2': missing"),
        ("R0_rect", "R0_rect: 1 0 0 0 1 0 0 0 1 0", r"field 'R0_rect': expected 9 numbers, got 10"),
        ("P1", "P1: 700 0 600 0 0 700 180 0 0 0 1 O.5", r"field 'P1': expected a number at position 12, got malformed 'O.5'"),
        ("Tr_velo_to_cam", "Tr_velo_to_cam: 1 0 0 0 0 1 0 0 0 0 nan 0", r"field 'Tr_velo_to_cam': expected finite numbers, got 'nan' at position 11"),
        ("Tr_imu_to_velo", "Tr_imu_to_velo: 1 0 0 0 0 1 0 0 0 0 1 inf", r"field 'Tr_imu_to_velo': expected finite numbers, got 'inf'"),
        ("Tr_velo_to_cam", "Tr_velo_to_cam: 1 0.2 0 0 0 1 0 0 0 0 1 0", r"field 'Tr_velo_to_cam': expected an orthonormal rotation .* got deviation 0\.2"),
        ("R0_rect", "R0_rect: 1 0 0 0 1 0 0 0 -1", r"field 'R0_rect': expected a rotation matrix \(det = \+1\), got det = -1"),
        ("P0", "700 0 600 0 0 700 180 0 0 0 1 0", r"calib/000001.txt: line \d+: expected 'key: values', got '700 0 600"),
        ("P0", "P0: " + _numbers(kitti_like_P(0.0)) + "\nP0: " + _numbers(kitti_like_P(0.0)), r"field 'P0': given twice \(lines \d+ and \d+\)"),
    ],
)
def test_object_calib_bad_input_names_file_and_field(key, new_line, match):
    text = _replace_line(format_kitti_object_calib(synthetic_object_calib()), key, new_line)
    with pytest.raises(CalibrationFileError, match=match) as info:
        parse_kitti_object_calib(text, path="calib/000001.txt")
    assert info.value.path == "calib/000001.txt"


def test_object_calib_rejects_undecodable_bytes(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_bytes(b"P0: \xff\xfe 1 2\n")
    with pytest.raises(CalibrationFileError, match="expected UTF-8 text"):
        read_kitti_object_calib(path)


def test_object_calib_rotation_tolerance_is_adjustable():
    text = _replace_line(format_kitti_object_calib(synthetic_object_calib()), "R0_rect", "R0_rect: 1.0002 0 0 0 1 0 0 0 1")
    notes = parse_kitti_object_calib(text).unrepresented  # deviation 4e-4: accepted, reported
    assert any(note.field == "R0_rect" and "re-orthonormalised" in note.reason for note in notes)
    with pytest.raises(CalibrationFileError, match=r"field 'R0_rect': expected an orthonormal rotation \(\|R\^T R - I\|_F <= 0.0001\), got deviation 0.0004"):
        parse_kitti_object_calib(text, rotation_tol=1e-4)


# ---------------------------------------------------------------------- object calib: real data
@pytest.mark.realdata
def test_kitti_000001_velodyne_lands_on_image_2(shared_data):
    calib_path = shared_data / "kitti/training/calib/000001.txt"
    calib = read_kitti_object_calib(calib_path)
    from PIL import Image

    with Image.open(shared_data / "kitti/training/image_2/000001.png") as image:
        size = image.size
    assert size == KITTI_IMAGE_SIZE
    rig = calib.to_rig(size)
    points = np.fromfile(shared_data / "kitti/training/velodyne/000001.bin", dtype=np.float32).reshape(-1, 4)
    xyz = points[:, :3].astype(np.float64)
    uv, depth = project_with_rig_camera(rig.cameras["image_2"], xyz)
    front = depth > 0.5

    # Agrees with P2 @ R0_rect @ Tr_velo_to_cam built from the reader's matrices ...
    np.testing.assert_allclose(uv[front], project_with_P(calib.P["P2"], calib.rect_SE3_velo, xyz)[front], atol=1e-6)
    # ... and, within the re-orthonormalisation of R0_rect / Tr (7-digit files: ~1e-7), with
    # the file's numbers taken verbatim.
    raw = raw_matrices(calib_path)
    R0 = np.eye(4)
    R0[:3, :3] = raw["R0_rect"].reshape(3, 3)
    Tr = np.eye(4)
    Tr[:3] = raw["Tr_velo_to_cam"].reshape(3, 4)
    h = np.c_[xyz, np.ones(len(xyz))] @ (raw["P2"].reshape(3, 4) @ R0 @ Tr).T
    np.testing.assert_allclose(uv[front], (h[:, :2] / h[:, 2:])[front], atol=5e-3)

    # A forward wedge well inside image_2's 81 degree field of view lands on the image.
    wedge = (xyz[:, 0] > 5.0) & (np.abs(xyz[:, 1]) < 0.5 * xyz[:, 0])
    assert wedge.sum() > 10_000
    assert in_image(uv[wedge], size).mean() > 0.8
    # while points behind the car never do
    behind = xyz[:, 0] < -5.0
    assert not np.any(in_image(uv[behind], size) & front[behind])

    if hasattr(rig.cameras["image_2"].model, "project"):  # CameraModel.project, when present
        points_camera = rig.cameras["image_2"].ego_SE3_camera.inverse().transform_points(xyz)
        projection = rig.cameras["image_2"].model.project(points_camera)
        valid = np.asarray(projection.valid)
        np.testing.assert_allclose(projection.uv_px[valid], uv[valid], atol=1e-6)
        np.testing.assert_array_equal(valid, front & in_image(uv, size) & (depth > 1e-6))


@pytest.mark.realdata
def test_kitti_000001_reports_what_the_rig_does_not_hold(shared_data):
    calib = read_kitti_object_calib(shared_data / "kitti/training/calib/000001.txt")
    notes = {note.field: note.reason for note in calib.unrepresented}
    assert set(notes) == {"R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"}
    assert "re-orthonormalised" in notes["R0_rect"]
    assert calib.velo_SE3_imu is not None
    np.testing.assert_allclose(calib.velo_SE3_imu.translation, [-0.8086759, 0.3195559, -0.7997231])


@pytest.mark.realdata
def test_kitti_000001_label_boxes_contain_lidar_points(shared_data):
    calib = read_kitti_object_calib(shared_data / "kitti/training/calib/000001.txt")
    rig = calib.to_rig(KITTI_IMAGE_SIZE)
    points = np.fromfile(shared_data / "kitti/training/velodyne/000001.bin", dtype=np.float32).reshape(-1, 4)
    rows = [line.split() for line in (shared_data / "kitti/training/label_2/000001.txt").read_text().splitlines()]
    rows = [row for row in rows if row[0] != "DontCare"]
    dims_hwl = np.array([[float(v) for v in row[8:11]] for row in rows])
    locations = np.array([[float(v) for v in row[11:14]] for row in rows])
    ry = np.array([float(row[14]) for row in rows])
    # image_0 is the rectified camera-0 frame itself (P0 = K [I | 0]): label_2's frame.
    lidar_SE3_rect = rig.cameras["image_0"].ego_SE3_camera
    assert lidar_SE3_rect.allclose(calib.rect_SE3_velo.inverse(), atol_rad=1e-12, atol_m=1e-12)
    centres, sizes, yaws = kitti_boxes_to_lidar(locations, dims_hwl, ry, lidar_SE3_rect)
    counts = count_points_in_boxes(points.astype(np.float64), centres, sizes, yaws)
    # Truck at 69 m, car at 58 m, cyclist at 46 m: a handful to dozens of points each.
    assert [row[0] for row in rows] == ["Truck", "Car", "Cyclist"]
    assert all(count >= 5 for count in counts), counts
    # the boxes are far ahead of the car, headed as the labels' ry says
    assert np.all(centres[:, 0] > 40) and np.all(np.abs(centres[:, 1]) < 0.4 * centres[:, 0])
    np.testing.assert_allclose(yaws, -ry - np.pi / 2, atol=0.02)
    # Shifting the boxes sideways by two widths empties them: the counts are not ground clutter.
    shifted = centres + np.c_[np.zeros(len(centres)), 2 * sizes[:, 1] + 2.0, np.zeros(len(centres))]
    assert sum(count_points_in_boxes(points.astype(np.float64), shifted, sizes, yaws)) < sum(counts) / 3


@pytest.mark.realdata
def test_kitti_demo_000008_point_counts_match_published_counts(shared_data):
    folder = shared_data / "kitti/demo_000008"
    with open(folder / "000008.pkl", "rb") as stream:
        info = pickle.load(stream)["data_list"][0]  # test oracle only
    images, lidar = info["images"], info["lidar_points"]
    P = {key: np.array(images[f"CAM{key[1]}"]["cam2img"])[:3] for key in KITTI_CAMERAS}
    np.testing.assert_array_equal(np.loadtxt(folder / "000008.txt").reshape(4, 4)[:3], P["P2"])
    # Round-trip the pkl's calibration through the KITTI calib text format first.
    calib = parse_kitti_object_calib(
        format_kitti_object_calib(
            KittiObjectCalib(
                P,
                np.array(images["R0_rect"])[:3, :3],
                SE3.from_matrix(np.array(lidar["Tr_velo_to_cam"])),
                SE3.from_matrix(np.array(lidar["Tr_imu_to_velo"])),
            )
        ),
        path="000008 (from pkl)",
    )
    rig = calib.to_rig((int(images["CAM2"]["width"]), int(images["CAM2"]["height"])))
    lidar2img = np.array(images["CAM2"]["lidar2img"])
    points = np.fromfile(folder / "000008.bin", dtype=np.float32).reshape(-1, 4).astype(np.float64)
    h = np.c_[points[:, :3], np.ones(len(points))] @ lidar2img[:3].T
    uv, _ = project_with_rig_camera(rig.cameras["image_2"], points[:, :3])
    np.testing.assert_allclose(uv, h[:, :2] / h[:, 2:], atol=5e-3)  # pkl matrices are float32-rounded

    instances = [inst for inst in info["instances"] if inst["bbox_label_3d"] >= 0]
    boxes = np.array([inst["bbox_3d"] for inst in instances])  # x, y, z, l, h, w, ry (rect camera)
    published = np.array([inst["num_lidar_pts"] for inst in instances])
    centres, sizes, yaws = kitti_boxes_to_lidar(boxes[:, :3], boxes[:, [4, 5, 3]], boxes[:, 6], rig.cameras["image_0"].ego_SE3_camera)
    counts = np.array(count_points_in_boxes(points, centres, sizes, yaws))
    # Measured: ours [1426, 1933, 881, 666, 54, 169] vs published [1325, 1900, 881, 659, 55, 162].
    # The two nearest cars (3.7 m and 7.9 m) stand in dense ground returns (~25 points per cm
    # of box height), which is where the 101 / 33 point differences come from.
    assert len(counts) == 6
    np.testing.assert_array_less(np.abs(counts - published), np.maximum(8, 0.08 * published))
    assert np.sum(np.abs(counts - published) <= 7) >= 4
    assert abs(counts.sum() - published.sum()) < 0.05 * published.sum()


# ---------------------------------------------------------------------- raw calib
def synthetic_raw_calib(seed: int = 0) -> KittiRawCalib:
    rng = np.random.default_rng(seed)
    object_calib = synthetic_object_calib(seed)
    cameras = {}
    for i, key in enumerate(KITTI_CAMERAS):
        camera_SE3_cam00 = SE3.identity() if i == 0 else random_se3(rng, 0.3)
        cameras[f"{i:02d}"] = KittiRawCamera(
            size_px=(1392, 512),
            K=np.array([[984.2439 + i, 0.0, 690.0], [0.0, 980.8141, 233.1966], [0.0, 0.0, 1.0]]),
            D=rng.normal(scale=0.1, size=5),
            camera_SE3_cam00=camera_SE3_cam00,
            rect_size_px=KITTI_IMAGE_SIZE,
            R_rect=object_calib.R0_rect if i == 0 else random_se3(rng).rotation,
            P_rect=object_calib.P[key],
        )
    cam_to_cam = KittiRawCamToCam("09-Jan-2012 13:57:47", 0.0995, cameras)
    velo_to_cam = KittiRawVeloToCam("15-Mar-2012 11:37:16", object_calib.cam0_SE3_velo)
    imu_to_velo = KittiRawImuToVelo("25-May-2012 16:47:16", object_calib.velo_SE3_imu)
    return KittiRawCalib(cam_to_cam, velo_to_cam, imu_to_velo)


def test_raw_calib_round_trip(tmp_path):
    calib = synthetic_raw_calib()
    write_kitti_raw_calib(calib, tmp_path / "2011_09_26")
    back = read_kitti_raw_calib(tmp_path / "2011_09_26")
    assert back.cam_to_cam.calib_time == "09-Jan-2012 13:57:47"
    assert back.cam_to_cam.corner_dist_m == 0.0995
    assert list(back.cam_to_cam.cameras) == ["00", "01", "02", "03"]
    for xx, camera in calib.cam_to_cam.cameras.items():
        other = back.cam_to_cam.cameras[xx]
        assert other.size_px == camera.size_px and other.rect_size_px == camera.rect_size_px
        for name in ("K", "D", "R_rect", "P_rect"):
            np.testing.assert_array_equal(getattr(other, name), getattr(camera, name))
        assert other.camera_SE3_cam00.allclose(camera.camera_SE3_cam00, atol_rad=1e-12, atol_m=1e-12)
    assert back.velo_to_cam.calib_time == "15-Mar-2012 11:37:16"
    assert back.velo_to_cam.cam00_SE3_velo.allclose(calib.velo_to_cam.cam00_SE3_velo, atol_rad=1e-12, atol_m=1e-12)
    assert back.velo_to_cam.delta_f == (0.0, 0.0) and back.velo_to_cam.delta_c == (0.0, 0.0)
    assert back.imu_to_velo.velo_SE3_imu.allclose(calib.imu_to_velo.velo_SE3_imu, atol_rad=1e-12, atol_m=1e-12)


def test_raw_rectified_rig_matches_the_object_calib_rig():
    raw = synthetic_raw_calib(seed=5)
    object_rig = synthetic_object_calib(seed=5).to_rig(KITTI_IMAGE_SIZE)
    raw_rig = raw.to_rig()
    for i in range(4):
        a, b = raw_rig.cameras[f"image_{i:02d}"], object_rig.cameras[f"image_{i}"]
        assert a.model == b.model
        assert a.ego_SE3_camera.allclose(b.ego_SE3_camera, atol_rad=1e-12, atol_m=1e-12)


def test_raw_unrectified_rig_uses_K_D_and_R_T():
    raw = synthetic_raw_calib(seed=2)
    rig = raw.to_rig(rectified=False)
    camera = raw.cam_to_cam.cameras["02"]
    rig_camera = rig.cameras["image_02"]
    assert rig_camera.model.distortion_model == "radtan"
    np.testing.assert_array_equal(rig_camera.model.distortion, camera.D)
    assert (rig_camera.model.width_px, rig_camera.model.height_px) == (1392, 512)
    np.testing.assert_array_equal(rig_camera.model.K, camera.K)
    expected = camera.camera_SE3_cam00.compose(raw.velo_to_cam.cam00_SE3_velo).inverse()
    assert rig_camera.ego_SE3_camera.allclose(expected, atol_rad=1e-12, atol_m=1e-12)


def test_raw_calib_notes(tmp_path):
    write_kitti_raw_calib(synthetic_raw_calib(), tmp_path)
    calib = read_kitti_raw_calib(tmp_path)
    fields = [note.field for note in calib.unrepresented]
    assert "calib_cam_to_cam.txt: corner_dist" in fields
    assert "calib_cam_to_cam.txt: R_rect_02" in fields
    assert "calib_imu_to_velo.txt: R, T" in fields
    without_imu = KittiRawCalib(calib.cam_to_cam, calib.velo_to_cam, None)
    assert any(note.field == "calib_imu_to_velo.txt" for note in without_imu.unrepresented)


def test_raw_reader_real_layout_and_deprecated_deltas():
    # The layout of a real calib_velo_to_cam.txt (KITTI 2011_09_26), values from object 000001.
    text = (
        "calib_time: 15-Mar-2012 11:37:16\n"
        "R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 "
        "9.998621e-01 7.523790e-03 1.480755e-02\n"
        "T: -4.069766e-03 -7.631618e-02 -2.717806e-01\n"
        "delta_f: 0.000000e+00 0.000000e+00\n"
        "delta_c: 0.000000e+00 0.000000e+00\n"
    )
    calib = parse_kitti_raw_velo_to_cam(text, path="calib_velo_to_cam.txt")
    np.testing.assert_allclose(calib.cam00_SE3_velo.translation, [-4.069766e-03, -7.631618e-02, -2.717806e-01])
    fields = {note.field for note in calib.unrepresented}
    assert {"calib_time", "R", "delta_f", "delta_c"} <= fields


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: re.sub(r"K_02: [^\n]*\n", "", t), r"cam_to_cam.txt: field 'K_02': missing"),
        (lambda t: re.sub(r"(D_01: )((?:\S+ ){4}\S+)", r"\1 1 2 3 4", t), r"field 'D_01': expected 5 numbers, got 4"),
        (lambda t: re.sub(r"S_rect_00: [^\n]*", "S_rect_00: 1242.5 375", t), r"field 'S_rect_00': expected two positive whole numbers"),
        (lambda t: re.sub(r"T_03: [^\n]*", "T_03: 0 0 NaN", t), r"field 'T_03': expected finite numbers, got 'NaN'"),
        (lambda t: re.sub(r"R_01: [^\n]*", "R_01: 2 0 0 0 1 0 0 0 1", t), r"field 'R_01': expected an orthonormal rotation"),
        (lambda t: t.replace("corner_dist", "corner_distance"), r"field 'corner_dist': missing"),
    ],
)
def test_raw_cam_to_cam_bad_input(edit, match):
    from calibration.formats import format_kitti_raw_cam_to_cam

    text = edit(format_kitti_raw_cam_to_cam(synthetic_raw_calib().cam_to_cam))
    with pytest.raises(CalibrationFileError, match=match):
        parse_kitti_raw_cam_to_cam(text, path="calib_cam_to_cam.txt")

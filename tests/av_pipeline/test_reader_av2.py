"""Argoverse 2 sensor-log reader, on small logs written here in the published layout.

The writer below follows the AV2 format (Feather tables, float16 ego-frame sweeps,
``wxyz`` quaternions, boxes with length along the object's +x) independently of the reader:
the checks compare the reader's records with the values the writer was given and with
geometry computed here from the raw AV2 fields (quaternion -> box corners, points planted
inside boxes in the box's own frame, a static world landmark seen from every ego pose).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import feather

from av_pipeline.errors import LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers.av2 import AV2_LIDAR, AV2_LIDAR_COLUMNS, Av2SensorReader
from av_pipeline.readers.track_ids import track_id_from_string
from av_pipeline.taxonomy import product_class
from calibration import SE3
from calibration.rotation import rotation_to_wxyz

T0_NS = 315968112437425433
PERIOD_NS = 100_000_000
N_FRAMES = 3
LANDMARK_WORLD = np.array([130.0, -10.0, 2.0])
#: camera name -> (ego_SE3_camera, (fx, fy, cx, cy, width, height), (k1, k2, k3), image time offset ns)
CAMERAS = {
    "ring_front_center": ((0.0, 0.0, 0.0), (1.6, 0.0, 1.4), (30.0, 30.0, 15.5, 11.5, 32, 24), (-0.25, -0.2, 0.3), 7_000_000),
    "ring_side_left": ((np.pi / 2, 0.0, 0.0), (1.3, 0.27, 1.43), (28.0, 29.0, 15.0, 12.0, 32, 24), (-0.26, -0.13, 0.2), -12_000_000),
}
#: track uuid -> (category, lwh, centre in ego at frame 0, velocity in ego m/frame, yaw in ego, frames present)
TRACKS = {
    "0a8f7c0e-8b0e-4c47-9e4f-5f2d7d3c1a11": ("REGULAR_VEHICLE", (4.5, 1.9, 1.6), (10.0, 2.0, 0.8), (0.5, 0.0, 0.0), 0.4, (0, 1, 2)),
    "f3b1d0aa-2c7e-4d5b-8a90-6e1c2b3d4f50": ("PEDESTRIAN", (0.8, 0.7, 1.8), (-6.0, -3.0, 0.9), (0.0, 0.3, 0.0), -1.2, (0, 1)),
}
INTERIOR_POINTS = {"REGULAR_VEHICLE": 40, "PEDESTRIAN": 15}


def camera_rotation(yaw_rad: float) -> np.ndarray:
    """ego_R_camera of a camera looking along ego yaw ``yaw_rad`` (camera z forward, x right, y down)."""
    forward = np.array([np.cos(yaw_rad), np.sin(yaw_rad), 0.0])
    right = np.array([np.sin(yaw_rad), -np.cos(yaw_rad), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    return np.stack([right, down, forward], axis=1)


def yaw_wxyz(yaw_rad: float) -> tuple[float, float, float, float]:
    return (float(np.cos(yaw_rad / 2)), 0.0, 0.0, float(np.sin(yaw_rad / 2)))


def world_SE3_ego_at(t_ns: int) -> SE3:
    """The ego drives forward while turning at a constant rate (slerp/linear interpolation is exact)."""
    s = (t_ns - T0_NS) / PERIOD_NS
    return SE3.from_yaw_translation(0.3 + 0.1 * s, [100.0 + 5.0 * s, -20.0 + 1.0 * s, 3.0])


def box_local_to_ego(local: np.ndarray, centre: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + centre


def make_log(root: Path, rng: np.random.Generator, *, with_images: bool = True, with_annotations: bool = True) -> dict:
    """Write an AV2 log to ``root`` and return what was written (the oracle)."""
    from PIL import Image

    (root / "sensors" / "lidar").mkdir(parents=True)
    (root / "calibration").mkdir()
    truth: dict = {"sweeps": {}, "boxes": {}, "images": {}}
    annotation_rows = []
    for k in range(N_FRAMES):
        t_ns = T0_NS + k * PERIOD_NS
        blocks, counts = [], {}
        for uuid, (category, lwh, centre0, velocity, yaw, present) in TRACKS.items():
            if k not in present:
                continue
            centre = np.add(centre0, np.multiply(velocity, k))
            half = np.array(lwh) / 2 - 0.15  # stay clear of the faces: float16 moves points by < 8 mm
            local = rng.uniform(-half, half, size=(INTERIOR_POINTS[category], 3))
            blocks.append(box_local_to_ego(local, centre, yaw))
            counts[uuid] = INTERIOR_POINTS[category]
            annotation_rows.append((t_ns, uuid, category, lwh, yaw_wxyz(yaw), centre, INTERIOR_POINTS[category]))
            truth["boxes"][(k, uuid)] = (centre, lwh, yaw, category)
        background = np.column_stack([rng.uniform(25, 45, 200), rng.uniform(-20, 20, 200), rng.uniform(-1, 3, 200)])
        landmark_ego = world_SE3_ego_at(t_ns).inverse().transform_points(LANDMARK_WORLD[None])
        xyz = np.concatenate(blocks + [background, landmark_ego]).astype(np.float16)
        n = len(xyz)
        intensity = rng.integers(0, 256, n).astype(np.uint8)
        laser = rng.integers(0, 64, n).astype(np.uint8)
        offsets = np.sort(rng.integers(0, 99_000_000, n)).astype(np.int32)
        table = pa.table({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "intensity": intensity, "laser_number": laser, "offset_ns": offsets})
        feather.write_feather(table, root / "sensors" / "lidar" / f"{t_ns}.feather")
        truth["sweeps"][t_ns] = (xyz, intensity, laser, offsets)

    # poses at the sweep times and half-way between them
    pose_times = sorted({T0_NS + k * PERIOD_NS // 2 for k in range(2 * N_FRAMES - 1)})
    poses = [world_SE3_ego_at(t) for t in pose_times]
    wxyz = rotation_to_wxyz(np.stack([p.rotation for p in poses]))
    feather.write_feather(
        pa.table(
            {
                "timestamp_ns": np.array(pose_times, dtype=np.int64),
                **{name: wxyz[:, i] for i, name in enumerate(("qw", "qx", "qy", "qz"))},
                **{name: np.array([p.translation[i] for p in poses]) for i, name in enumerate(("tx_m", "ty_m", "tz_m"))},
            }
        ),
        root / "city_SE3_egovehicle.feather",
    )

    names, quats, trans, intrinsics = [], [], [], {k: [] for k in ("fx_px", "fy_px", "cx_px", "cy_px", "k1", "k2", "k3", "height_px", "width_px")}
    for name, (ypr, t, (fx, fy, cx, cy, w, h), (k1, k2, k3), _) in CAMERAS.items():
        names.append(name)
        quats.append(rotation_to_wxyz(camera_rotation(ypr[0])))
        trans.append(t)
        for key, value in zip(intrinsics, (fx, fy, cx, cy, k1, k2, k3, h, w)):
            intrinsics[key].append(value)
    for name, yaw, t in (("up_lidar", -0.0057, (1.35, 0.0, 1.64)), ("down_lidar", np.pi, (1.355, 0.0, 1.565))):
        names.append(name)
        quats.append(np.array(yaw_wxyz(yaw)))
        trans.append(t)
    quats_arr, trans_arr = np.array(quats), np.array(trans)
    feather.write_feather(
        pa.table(
            {
                "sensor_name": names,
                **{q: quats_arr[:, i] for i, q in enumerate(("qw", "qx", "qy", "qz"))},
                **{c: trans_arr[:, i] for i, c in enumerate(("tx_m", "ty_m", "tz_m"))},
            }
        ),
        root / "calibration" / "egovehicle_SE3_sensor.feather",
    )
    intrinsic_table = {"sensor_name": list(CAMERAS), **{k: np.array(v, dtype=np.int64 if k.endswith("_px") and k[0] in "hw" else np.float64) for k, v in intrinsics.items()}}
    feather.write_feather(pa.table(intrinsic_table), root / "calibration" / "intrinsics.feather")

    if with_images:
        for name, (_, _, (_, _, _, _, w, h), _, offset_ns) in CAMERAS.items():
            folder = root / "sensors" / "cameras" / name
            folder.mkdir(parents=True)
            for k in range(N_FRAMES):
                t_img = T0_NS + k * PERIOD_NS + offset_ns
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buffer, format="JPEG")
                (folder / f"{t_img}.jpg").write_bytes(buffer.getvalue())
                truth["images"][(name, k)] = (t_img, buffer.getvalue())
        # an image far from every sweep is never picked
        (root / "sensors" / "cameras" / "ring_side_left" / f"{T0_NS + 10 * PERIOD_NS}.jpg").write_bytes(b"not a jpeg")

    if with_annotations:
        rows = annotation_rows
        feather.write_feather(
            pa.table(
                {
                    "timestamp_ns": np.array([r[0] for r in rows], dtype=np.int64),
                    "track_uuid": [r[1] for r in rows],
                    "category": [r[2] for r in rows],
                    "length_m": np.array([r[3][0] for r in rows]),
                    "width_m": np.array([r[3][1] for r in rows]),
                    "height_m": np.array([r[3][2] for r in rows]),
                    **{q: np.array([r[4][i] for r in rows]) for i, q in enumerate(("qw", "qx", "qy", "qz"))},
                    **{c: np.array([r[5][i] for r in rows]) for i, c in enumerate(("tx_m", "ty_m", "tz_m"))},
                    "num_interior_pts": np.array([r[6] for r in rows], dtype=np.int64),
                }
            ),
            root / "annotations.feather",
        )
    return truth


@pytest.fixture
def av2_log(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "8de6abb6-6589-3da7-8e21-6ecc80004a36"
    return root, make_log(root, np.random.default_rng(0))


def test_open_log_detects_av2_and_lists_sweeps(av2_log):
    root, truth = av2_log
    with open_log(root) as reader:
        assert isinstance(reader, Av2SensorReader)
        refs = reader.list_frames()
    assert [ref.timestamp_ns for ref in refs] == sorted(truth["sweeps"])
    assert {ref.log_id for ref in refs} == {root.name}
    assert [ref.reader for ref in refs] == ["av2"] * N_FRAMES


def test_frame_points_are_the_ego_frame_sweep_with_offsets_as_a_column(av2_log):
    root, truth = av2_log
    reader = open_log(root)
    for ref in reader.list_frames():
        frame = reader.load_frame(ref)
        xyz, intensity, laser, offsets = truth["sweeps"][ref.timestamp_ns]
        sweep = frame.lidars[AV2_LIDAR]
        assert frame.timestamp_ns == sweep.timestamp_ns == ref.timestamp_ns
        assert sweep.columns == AV2_LIDAR_COLUMNS
        np.testing.assert_array_equal(sweep.xyz, xyz.astype(np.float32))  # float16 -> float32 is exact
        np.testing.assert_array_equal(sweep.column("intensity"), intensity)
        np.testing.assert_array_equal(sweep.column("laser_number"), laser)
        np.testing.assert_allclose(sweep.column("time_offset_ns"), offsets, atol=8)
        # the points are already motion-compensated: no per-point times for fusion to de-skew with
        assert sweep.time_offsets_ns is None
        assert frame.rig.ego_SE3_lidar(AV2_LIDAR) == SE3.identity()


def test_poses_compose_to_a_static_world_landmark(av2_log):
    """The last point of every sweep is one static world point: ego -> world must bring it home."""
    root, truth = av2_log
    reader = open_log(root)
    for ref in reader.list_frames():
        frame = reader.load_frame(ref)
        assert frame.world_SE3_ego.allclose(world_SE3_ego_at(ref.timestamp_ns), atol_rad=1e-12, atol_m=1e-9)
        landmark_world = frame.world_SE3_ego.transform_points(frame.lidar.xyz[-1:].astype(np.float64))
        np.testing.assert_allclose(landmark_world[0], LANDMARK_WORLD, atol=0.03)  # float16 storage of ~30 m


def test_pose_between_table_rows_is_interpolated_and_outside_is_an_error(av2_log):
    root, _ = av2_log
    poses = feather.read_table(root / "city_SE3_egovehicle.feather")
    t1 = T0_NS + PERIOD_NS
    keep = np.array(poses.column("timestamp_ns").to_numpy()) != t1
    feather.write_feather(poses.filter(pa.array(keep)), root / "city_SE3_egovehicle.feather")
    reader = open_log(root)
    frame = reader.load_frame(reader.list_frames()[1])
    assert frame.world_SE3_ego.allclose(world_SE3_ego_at(t1), atol_rad=1e-9, atol_m=1e-7)

    last = np.array(poses.column("timestamp_ns").to_numpy()) < T0_NS + (N_FRAMES - 1) * PERIOD_NS
    feather.write_feather(poses.filter(pa.array(last)), root / "city_SE3_egovehicle.feather")
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"city_SE3_egovehicle.feather: timestamp_ns: no pose at or around sweep time"):
        reader.load_frame(reader.list_frames()[-1])


def test_rig_cameras_images_and_the_raw_lens(av2_log):
    root, truth = av2_log
    reader = open_log(root)
    assert set(reader.ego_SE3_sensors) == {"ring_front_center", "ring_side_left", "up_lidar", "down_lidar"}
    frames = [reader.load_frame(ref) for ref in reader.list_frames()]
    for name, (ypr, t, (fx, fy, cx, cy, w, h), (k1, k2, k3), _) in CAMERAS.items():
        camera = frames[0].rig.cameras[name]
        np.testing.assert_allclose(camera.ego_SE3_camera.rotation, camera_rotation(ypr[0]), atol=1e-12)
        np.testing.assert_allclose(camera.ego_SE3_camera.translation, t)
        assert (camera.model.fx_px, camera.model.fy_px, camera.model.cx_px, camera.model.cy_px) == (fx, fy, cx, cy)
        assert (camera.model.width_px, camera.model.height_px) == (w, h)
        assert camera.model.distortion_model == "pinhole"  # released AV2 images are undistorted
        assert reader.lens_distortion[name] == (k1, k2, 0.0, 0.0, k3)
        lens = reader.raw_lens_model(name)
        assert lens.distortion_model == "radtan" and lens.distortion == (k1, k2, 0.0, 0.0, k3)
        for k, frame in enumerate(frames):
            t_img, data = truth["images"][(name, k)]
            image = frame.images[name]
            assert image.timestamp_ns == t_img and image.data == data and image.encoding == "jpeg"
            assert image.decode().shape == (h, w, 3)
    # the rig maps a point 10 m ahead of the ego to the front camera's optical axis
    front = frames[0].rig.cameras["ring_front_center"]
    ahead_camera = front.ego_SE3_camera.inverse().transform_points(np.array([[11.6, 0.0, 1.4]]))
    np.testing.assert_allclose(ahead_camera, [[0.0, 0.0, 10.0]], atol=1e-9)


def test_max_image_offset_and_camera_selection(av2_log):
    root, _ = av2_log
    reader = open_log(root, max_image_offset_ns=10_000_000, cameras="ring_front_center")
    frame = reader.load_frame(reader.list_frames()[0])
    assert list(frame.rig.cameras) == ["ring_front_center"]
    assert list(frame.images) == ["ring_front_center"]
    # ring_side_left's images are 12 ms from the sweeps: beyond a 10 ms tolerance, within 50 ms
    reader = open_log(root, max_image_offset_ns=10_000_000)
    frame = reader.load_frame(reader.list_frames()[0])
    assert list(frame.images) == ["ring_front_center"] and "ring_side_left" in frame.rig.cameras
    assert set(open_log(root).load_frame(reader.list_frames()[0]).images) == set(CAMERAS)
    with pytest.raises(LogFormatError, match=r"intrinsics.feather: sensor_name: cameras \['nope'\]"):
        open_log(root, cameras=["nope"])


def test_cuboids_in_product_convention_match_av2_geometry(av2_log):
    root, truth = av2_log
    reader = open_log(root)
    for k, ref in enumerate(reader.list_frames()):
        frame = reader.load_frame(ref)
        boxes = frame.annotations
        assert boxes.frame == "ego"
        present = [uuid for uuid, spec in TRACKS.items() if k in spec[5]]
        assert len(boxes) == len(present)
        for uuid in present:
            centre, lwh, yaw, category = truth["boxes"][(k, uuid)]
            i = int(np.flatnonzero(boxes.track_ids == track_id_from_string(uuid))[0])
            assert reader.track_uuid(int(boxes.track_ids[i])) == uuid
            assert boxes.source_labels[i] == category and boxes.labels[i] == product_class(category, "av2")  # the dataset name kept, the product class used
            np.testing.assert_allclose(boxes.centers_m[i], centre)
            np.testing.assert_allclose(boxes.sizes_m[i], lwh)  # AV2 length is along the object's +x
            np.testing.assert_allclose(boxes.yaws_rad[i], yaw, atol=1e-12)
            # corners straight from the AV2 fields: R(wxyz) @ (+-l/2, +-w/2, +-h/2) + t
            w_, x_, y_, z_ = yaw_wxyz(yaw)
            rot = np.array(
                [
                    [1 - 2 * (y_ * y_ + z_ * z_), 2 * (x_ * y_ - w_ * z_), 2 * (x_ * z_ + w_ * y_)],
                    [2 * (x_ * y_ + w_ * z_), 1 - 2 * (x_ * x_ + z_ * z_), 2 * (y_ * z_ - w_ * x_)],
                    [2 * (x_ * z_ - w_ * y_), 2 * (y_ * z_ + w_ * x_), 1 - 2 * (x_ * x_ + y_ * y_)],
                ]
            )
            signs = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, -1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1], [1, -1, 1]])
            expected = (signs * np.array(lwh) / 2) @ rot.T + centre
            np.testing.assert_allclose(boxes.corners_m()[i], expected, atol=1e-9)
            # the points planted inside the box (in its own frame) are counted, and only they
            assert boxes.num_lidar_points[i] == INTERIOR_POINTS[category]
    ids = [set(reader.load_frame(ref).annotations.track_ids.tolist()) for ref in reader.list_frames()]
    assert ids[0] == ids[1] and ids[2] < ids[0]  # the same uuid keeps its id across frames


def test_log_without_annotations_or_images(tmp_path):
    root = tmp_path / "log"
    make_log(root, np.random.default_rng(1), with_images=False, with_annotations=False)
    reader = open_log(root)
    frame = reader.load_frame(reader.list_frames()[0])
    assert frame.annotations is None and dict(frame.images) == {}
    assert set(frame.rig.cameras) == set(CAMERAS)


def _rewrite(path: Path, **replace: pa.Array) -> None:
    table = feather.read_table(path)
    for name, values in replace.items():
        if values is None:
            table = table.drop_columns([name])
        else:
            table = table.set_column(table.column_names.index(name), name, values)
    feather.write_feather(table, path)


def test_bad_input_names_the_file_and_the_field(av2_log):
    root, truth = av2_log
    sweep_path = root / "sensors" / "lidar" / f"{T0_NS}.feather"
    pristine = tmp_copy = root.parent / "pristine"
    shutil.copytree(root, pristine)

    def fresh() -> Path:
        shutil.rmtree(root)
        shutil.copytree(tmp_copy, root)
        return root

    # missing table
    (fresh() / "calibration" / "intrinsics.feather").unlink()
    with pytest.raises(LogFormatError, match=r"intrinsics.feather: table: missing required AV2 table"):
        open_log(root)
    (fresh() / "city_SE3_egovehicle.feather").unlink()
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"city_SE3_egovehicle.feather: table: missing"):
        reader.load_frame(reader.list_frames()[0])

    # wrong column type
    fresh()
    n = len(truth["sweeps"][T0_NS][0])
    _rewrite(sweep_path, intensity=pa.array(np.linspace(0, 1, n)))
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=rf"{T0_NS}.feather: intensity: expected a int column, got Arrow type double"):
        reader.load_frame(reader.list_frames()[0])
    fresh()
    _rewrite(root / "annotations.feather", length_m=pa.array(["4.5"] * 5))
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"annotations.feather: length_m: expected a float column, got Arrow type string"):
        reader.load_frame(reader.list_frames()[0])

    # missing column
    fresh()
    _rewrite(root / "annotations.feather", category=None)
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"annotations.feather: category: missing column"):
        reader.load_frame(reader.list_frames()[0])

    # truncated file
    fresh()
    sweep_path.write_bytes(sweep_path.read_bytes()[: sweep_path.stat().st_size // 2])
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=rf"{T0_NS}.feather: table: not a readable Feather file"):
        reader.load_frame(reader.list_frames()[0])

    # a quaternion that is not a rotation
    fresh()
    _rewrite(root / "calibration" / "egovehicle_SE3_sensor.feather", qw=pa.array([2.0, 1.0, 1.0, 0.0]))
    with pytest.raises(LogFormatError, match=r"egovehicle_SE3_sensor.feather: qw, qx, qy, qz: row 0: .*unit quaternion"):
        open_log(root)

    # a sweep file whose name is not a timestamp
    fresh()
    shutil.copy(sweep_path, root / "sensors" / "lidar" / "latest.feather")
    with pytest.raises(LogFormatError, match=r"latest.feather: file name: expected <timestamp_ns>.feather"):
        open_log(root)

    # a camera without extrinsics
    fresh()
    table = feather.read_table(root / "calibration" / "egovehicle_SE3_sensor.feather")
    feather.write_feather(table.slice(1), root / "calibration" / "egovehicle_SE3_sensor.feather")
    with pytest.raises(LogFormatError, match=r"egovehicle_SE3_sensor.feather: sensor_name: camera 'ring_front_center'"):
        open_log(root)


def test_av2_round_trip_through_the_writer(av2_log, tmp_path):
    """Frames read from a log, written back in the AV2 layout and read again, are unchanged."""
    root, _ = av2_log
    reader = open_log(root)
    frames = [reader.load_frame(ref) for ref in reader.list_frames()]
    copy = tmp_path / "copy" / root.name
    write_av2_log(copy, frames, reader)
    again = open_log(copy)
    assert [ref.timestamp_ns for ref in again.list_frames()] == [frame.timestamp_ns for frame in frames]
    for frame, ref in zip(frames, again.list_frames()):
        other = again.load_frame(ref)
        assert other.lidar.equals(frame.lidar)
        assert other.world_SE3_ego.allclose(frame.world_SE3_ego, atol_rad=1e-12, atol_m=1e-9)
        np.testing.assert_allclose(other.annotations.yaws_rad, frame.annotations.yaws_rad, atol=1e-12)
        np.testing.assert_allclose(other.annotations.centers_m, frame.annotations.centers_m)
        np.testing.assert_allclose(other.annotations.sizes_m, frame.annotations.sizes_m)
        np.testing.assert_array_equal(other.annotations.labels, frame.annotations.labels)
        np.testing.assert_array_equal(other.annotations.track_ids, frame.annotations.track_ids)
        np.testing.assert_array_equal(other.annotations.num_lidar_points, frame.annotations.num_lidar_points)
        assert {name: image.data for name, image in other.images.items()} == {name: image.data for name, image in frame.images.items()}
        for name, camera in frame.rig.cameras.items():
            assert other.rig.cameras[name].model == camera.model
            assert other.rig.cameras[name].ego_SE3_camera.allclose(camera.ego_SE3_camera, atol_rad=1e-12, atol_m=1e-12)


def write_av2_log(root: Path, frames, reader: Av2SensorReader) -> None:
    """A minimal AV2 writer: product frames (sweep in ``ego``, boxes in ``ego``) -> the AV2 layout."""
    (root / "sensors" / "lidar").mkdir(parents=True)
    (root / "calibration").mkdir()
    rows = []
    for frame in frames:
        sweep = frame.lidars[AV2_LIDAR]
        columns = {
            "x": sweep.column("x").astype(np.float16),
            "y": sweep.column("y").astype(np.float16),
            "z": sweep.column("z").astype(np.float16),
            "intensity": sweep.column("intensity").astype(np.uint8),
            "laser_number": sweep.column("laser_number").astype(np.uint8),
            "offset_ns": np.rint(sweep.column("time_offset_ns")).astype(np.int32),
        }
        feather.write_feather(pa.table(columns), root / "sensors" / "lidar" / f"{frame.timestamp_ns}.feather")
        for name, image in frame.images.items():
            folder = root / "sensors" / "cameras" / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{image.timestamp_ns}.jpg").write_bytes(image.data)
        boxes = frame.annotations
        for i in range(len(boxes)):
            rows.append((frame.timestamp_ns, reader.track_uuid(int(boxes.track_ids[i])), str(boxes.labels[i]), boxes.sizes_m[i], yaw_wxyz(boxes.yaws_rad[i]), boxes.centers_m[i], int(boxes.num_lidar_points[i])))
    poses = [frame.world_SE3_ego for frame in frames]
    wxyz = rotation_to_wxyz(np.stack([p.rotation for p in poses]))
    feather.write_feather(
        pa.table(
            {
                "timestamp_ns": np.array([frame.timestamp_ns for frame in frames], dtype=np.int64),
                **{q: wxyz[:, i] for i, q in enumerate(("qw", "qx", "qy", "qz"))},
                **{c: np.array([p.translation[i] for p in poses]) for i, c in enumerate(("tx_m", "ty_m", "tz_m"))},
            }
        ),
        root / "city_SE3_egovehicle.feather",
    )
    rig = frames[0].rig
    sensors = {name: camera.ego_SE3_camera for name, camera in rig.cameras.items()}
    wxyz = rotation_to_wxyz(np.stack([p.rotation for p in sensors.values()]))
    feather.write_feather(
        pa.table(
            {
                "sensor_name": list(sensors),
                **{q: wxyz[:, i] for i, q in enumerate(("qw", "qx", "qy", "qz"))},
                **{c: np.array([p.translation[i] for p in sensors.values()]) for i, c in enumerate(("tx_m", "ty_m", "tz_m"))},
            }
        ),
        root / "calibration" / "egovehicle_SE3_sensor.feather",
    )
    models = {name: camera.model for name, camera in rig.cameras.items()}
    feather.write_feather(
        pa.table(
            {
                "sensor_name": list(models),
                "fx_px": [m.fx_px for m in models.values()],
                "fy_px": [m.fy_px for m in models.values()],
                "cx_px": [m.cx_px for m in models.values()],
                "cy_px": [m.cy_px for m in models.values()],
                "height_px": pa.array([m.height_px for m in models.values()], pa.int64()),
                "width_px": pa.array([m.width_px for m in models.values()], pa.int64()),
            }
        ),
        root / "calibration" / "intrinsics.feather",
    )
    feather.write_feather(
        pa.table(
            {
                "timestamp_ns": pa.array([r[0] for r in rows], pa.int64()),
                "track_uuid": [r[1] for r in rows],
                "category": [r[2] for r in rows],
                "length_m": [float(r[3][0]) for r in rows],
                "width_m": [float(r[3][1]) for r in rows],
                "height_m": [float(r[3][2]) for r in rows],
                **{q: [r[4][i] for r in rows] for i, q in enumerate(("qw", "qx", "qy", "qz"))},
                **{c: [float(r[5][i]) for r in rows] for i, c in enumerate(("tx_m", "ty_m", "tz_m"))},
                "num_interior_pts": pa.array([r[6] for r in rows], pa.int64()),
            }
        ),
        root / "annotations.feather",
    )

"""PandaSet sequence reader, on small sequences written here in the published layout.

PandaSet's ``.pkl.gz`` files were written by pandas 1.x. :class:`LegacyDataFrame` below
writes that pickle layout opcode by opcode (``pandas.core.frame.DataFrame`` +
``BlockManager`` state with the ``"0.14.1"`` block list, ``Int64Index``/``RangeIndex`` via
``_new_Index``, numpy 1.x ``numpy.core.multiarray._reconstruct``), so the reader is tested
on the class names real files carry, not on what today's pandas writes. Geometry is checked
against values computed here from the raw PandaSet conventions (Pandar64 frame x right /
y forward, ``dimensions.x`` = width, ``yaw = 0`` along world +y).
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="the PandaSet reader needs pandas (extra 'pandaset')")

from av_pipeline.errors import LogFormatError  # noqa: E402
from av_pipeline.readers import open_log  # noqa: E402
from av_pipeline.readers.pandaset import PANDASET_LIDAR_COLUMNS, PandaSetReader  # noqa: E402
from av_pipeline.readers.restricted_pickle import read_dataframe_pickle  # noqa: E402
from av_pipeline.readers.track_ids import track_id_from_string  # noqa: E402
from av_pipeline.taxonomy import product_class
from calibration import SE3  # noqa: E402
from calibration.rotation import rotation_to_wxyz  # noqa: E402

T0_NS = 1557540883050300000
PERIOD_NS = 100_000_000
N_FRAMES = 3
CAMERA_DELAY_NS = 20_000_000
#: ego_R_pandar64: the Pandar64's axes (x right, y forward, z up) in the product's ego axes.
EGO_R_PANDAR = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
#: uuid -> (label, (width, length, height) = dimensions.x/y/z, world centre at frame 0, world velocity per frame,
#:          PandaSet yaw, cuboids.sensor_id, sibling uuid, interior points for the Pandar64)
CUBOIDS = {
    "car-0c5e": ("Car", (1.9, 4.6, 1.5), (112.0, -14.0, 1.0), (0.4, 0.1, 0.0), 0.35, -1, None, 30),
    "ped-77aa": ("Pedestrian", (0.7, 0.8, 1.8), (95.0, -26.0, 1.2), (0.0, 0.2, 0.0), -2.0, -1, None, 12),
    "bike-64": ("Bicycle", (0.6, 1.8, 1.4), (118.0, -6.0, 0.9), (0.0, 0.0, 0.0), 1.1, 0, "bike-gt", 9),
    "bike-gt": ("Bicycle", (0.6, 1.8, 1.4), (118.3, -6.0, 0.9), (0.0, 0.0, 0.0), 1.1, 1, "bike-64", 0),
}


# ---------------------------------------------------------------------- the pandas 1.x pickle layout
class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Reduce:
    def __init__(self, func: _Global, args: tuple, state=None) -> None:
        self.func, self.args, self.state = func, args, state


class _NewObj:
    def __init__(self, cls: _Global, state) -> None:
        self.cls, self.state = cls, state


class _LegacyPickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes _Global/_Reduce/_NewObj nodes as the opcodes pandas 1.x / numpy 1.x produced."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_global_node(self, obj: _Global) -> None:
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")
        self.memoize(obj)

    def _save_reduce_node(self, obj: _Reduce) -> None:
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.REDUCE)
        self.memoize(obj)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    def _save_newobj_node(self, obj: _NewObj) -> None:
        self.save(obj.cls)
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    dispatch[_Global] = _save_global_node
    dispatch[_Reduce] = _save_reduce_node
    dispatch[_NewObj] = _save_newobj_node


def legacy_array(array: np.ndarray) -> _Reduce:
    _, args, (version, shape, dtype, fortran, data) = np.ascontiguousarray(array).__reduce__()
    _, dtype_args, dtype_state = dtype.__reduce__()
    legacy_dtype = _Reduce(_Global("numpy", "dtype"), dtype_args, dtype_state)
    return _Reduce(_Global("numpy.core.multiarray", "_reconstruct"), (_Global("numpy", "ndarray"), args[1], args[2]), (version, shape, legacy_dtype, fortran, data))


def legacy_dataframe(columns: dict[str, np.ndarray], index_name: str | None = None) -> _NewObj:
    """A DataFrame as pandas 1.0 pickled it: blocks by dtype, ``Int64Index`` (named) or ``RangeIndex``."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    new_index = _Global("pandas.core.indexes.base", "_new_Index")
    items_index = _Reduce(new_index, (_Global("pandas.core.indexes.base", "Index"), {"data": legacy_array(np.array(names, dtype=object)), "name": None}))
    if index_name is None:
        rows = _Reduce(new_index, (_Global("pandas.core.indexes.range", "RangeIndex"), {"name": None, "start": 0, "stop": n, "step": 1}))
    else:
        rows = _Reduce(new_index, (_Global("pandas.core.indexes.numeric", "Int64Index"), {"data": legacy_array(np.arange(n, dtype=np.int64)), "name": index_name}))
    blocks, values, items = [], [], []
    for kind in ("f", "i", "b", "O"):
        locs = [i for i, name in enumerate(names) if np.asarray(columns[name]).dtype.kind == kind]
        if not locs:
            continue
        block = np.stack([np.asarray(columns[names[i]]) for i in locs])
        if kind == "O":
            block = block.astype(object)
        block_items = _Reduce(new_index, (_Global("pandas.core.indexes.base", "Index"), {"data": legacy_array(np.array([names[i] for i in locs], dtype=object)), "name": None}))
        mgr_locs = slice(locs[0], locs[-1] + 1, 1) if locs == list(range(locs[0], locs[-1] + 1)) else legacy_array(np.array(locs, dtype=np.int64))
        blocks.append({"values": legacy_array(block), "mgr_locs": mgr_locs})
        values.append(legacy_array(block))
        items.append(block_items)
    axes = [items_index, rows]
    manager = _NewObj(_Global("pandas.core.internals.managers", "BlockManager"), (axes, values, items, {"0.14.1": {"axes": axes, "blocks": blocks}}))
    return _NewObj(_Global("pandas.core.frame", "DataFrame"), {"_data": manager, "_typ": "dataframe", "_metadata": [], "attrs": {}})


def write_legacy_pickle(path: Path, columns: dict[str, np.ndarray], index_name: str | None = None, protocol: int = 4) -> None:
    buffer = io.BytesIO()
    _LegacyPickler(buffer, protocol=protocol).dump(legacy_dataframe(columns, index_name))
    path.write_bytes(gzip.compress(buffer.getvalue()))


# ---------------------------------------------------------------------- a sequence in the PandaSet layout
def world_SE3_ego_at(t_ns: int) -> SE3:
    s = (t_ns - T0_NS) / PERIOD_NS
    return SE3.from_yaw_translation(0.3 + 0.1 * s, [100.0 + 5.0 * s, -20.0 + 1.0 * s, 3.0])


EGO_SE3_FRONT_CAMERA = SE3(np.stack([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], axis=1), [1.5, 0.1, 1.6])


def seconds_json(times_ns: list[int]) -> str:
    """A JSON list of seconds written as exact decimals (as PandaSet's files hold them)."""
    return "[" + ", ".join(str(Decimal(t) / 10**9) for t in times_ns) + "]"


def pose_json(pose: SE3) -> dict:
    w, x, y, z = rotation_to_wxyz(pose.rotation)
    return {"position": dict(zip("xyz", map(float, pose.translation))), "heading": {"w": float(w), "x": float(x), "y": float(y), "z": float(z)}}


def box_world_points(spec, k: int, count: int, rng) -> np.ndarray:
    """Points inside a PandaSet cuboid, drawn in its own frame: x across (width), y along (length)."""
    _, (w, l, h), centre, velocity, yaw, *_ = spec
    local = rng.uniform(-(np.array([w, l, h]) / 2 - 0.05), np.array([w, l, h]) / 2 - 0.05, size=(count, 3))
    c, s = np.cos(yaw), np.sin(yaw)
    return local @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T + np.add(centre, np.multiply(velocity, k))


def make_sequence(root: Path, rng, *, protocol: int = 4) -> dict:
    """Write a 3-frame sequence; return the oracle."""
    from PIL import Image

    for folder in ("lidar", "camera/front_camera", "annotations/cuboids"):
        (root / folder).mkdir(parents=True)
    truth: dict = {"world_points": {}, "t_ns": []}
    times = [T0_NS + k * PERIOD_NS for k in range(N_FRAMES)]
    poses, cam_poses, cam_times = [], [], []
    for k, t_ns in enumerate(times):
        t = t_ns / 1e9
        world_SE3_ego = world_SE3_ego_at(t_ns)
        poses.append(pose_json(SE3(world_SE3_ego.rotation @ EGO_R_PANDAR, world_SE3_ego.translation)))
        blocks, sensor = [], []
        for spec in CUBOIDS.values():
            blocks.append(box_world_points(spec, k, spec[7], rng))
            sensor.append(np.zeros(spec[7], dtype=np.int64))
        background = world_SE3_ego.transform_points(np.column_stack([rng.uniform(25, 45, 150), rng.uniform(-20, 20, 150), rng.uniform(-1, 3, 150)]))
        ahead = world_SE3_ego.transform_points(np.array([[10.0, 0.0, 0.0], [0.0, 5.0, 0.0]]))  # 10 m ahead, 5 m to the left
        blocks += [background, ahead]
        sensor += [np.zeros(len(background) + 2, dtype=np.int64)]
        if k < 2:  # the PandarGT sees 20 points ahead in the first two frames only
            blocks.append(world_SE3_ego.transform_points(np.column_stack([rng.uniform(50, 80, 20), rng.uniform(-3, 3, 20), rng.uniform(0, 2, 20)])))
            sensor.append(np.ones(20, dtype=np.int64))
        xyz = np.concatenate(blocks)
        d = np.concatenate(sensor)
        t_points = t - 0.1 + rng.uniform(0, 0.1, len(xyz))
        intensity = rng.integers(0, 256, len(xyz)).astype(np.float64)
        write_legacy_pickle(root / "lidar" / f"{k:02d}.pkl.gz", {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "i": intensity, "t": t_points, "d": d}, "index", protocol)
        truth["world_points"][k] = (xyz, intensity, t_points, d)
        truth["t_ns"].append(t_ns)

        rows = []
        for uuid, (label, (w, l, h), centre, velocity, yaw, sensor_id, sibling, _) in CUBOIDS.items():
            position = np.add(centre, np.multiply(velocity, k))
            rows.append((uuid, label, yaw, bool(velocity == (0.0, 0.0, 0.0)), 0, position, (w, l, h), sensor_id, sibling))
        write_legacy_pickle(
            root / "annotations" / "cuboids" / f"{k:02d}.pkl.gz",
            {
                "uuid": np.array([r[0] for r in rows], dtype=object),
                "label": np.array([r[1] for r in rows], dtype=object),
                "yaw": np.array([r[2] for r in rows]),
                "stationary": np.array([r[3] for r in rows]),
                "camera_used": np.array([r[4] for r in rows], dtype=np.int64),
                "position.x": np.array([r[5][0] for r in rows]),
                "position.y": np.array([r[5][1] for r in rows]),
                "position.z": np.array([r[5][2] for r in rows]),
                "dimensions.x": np.array([r[6][0] for r in rows]),
                "dimensions.y": np.array([r[6][1] for r in rows]),
                "dimensions.z": np.array([r[6][2] for r in rows]),
                "attributes.object_motion": np.array(["Moving" if r[0] == "car-0c5e" else np.nan for r in rows], dtype=object),
                "cuboids.sibling_id": np.array([r[8] if r[8] else np.nan for r in rows], dtype=object),
                "cuboids.sensor_id": np.array([r[7] for r in rows], dtype=np.int64),
            },
            None,
            protocol,
        )
        t_cam = t_ns + CAMERA_DELAY_NS
        cam_times.append(t_cam)
        cam_poses.append(pose_json(world_SE3_ego_at(t_cam).compose(EGO_SE3_FRONT_CAMERA)))
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        (root / "camera" / "front_camera" / f"{k:02d}.jpg").write_bytes(buffer.getvalue())
    (root / "lidar" / "poses.json").write_text(json.dumps(poses))
    (root / "lidar" / "timestamps.json").write_text(seconds_json(times))
    (root / "camera" / "front_camera" / "poses.json").write_text(json.dumps(cam_poses))
    (root / "camera" / "front_camera" / "timestamps.json").write_text(seconds_json(cam_times))
    (root / "camera" / "front_camera" / "intrinsics.json").write_text(json.dumps({"fx": 35.0, "fy": 36.0, "cx": 19.5, "cy": 11.5}))
    truth["cam_t_ns"] = cam_times
    return truth


@pytest.fixture
def sequence(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "002"
    return root, make_sequence(root, np.random.default_rng(0))


# ---------------------------------------------------------------------- tests
def test_open_log_detects_pandaset_and_lists_frames(sequence):
    root, truth = sequence
    with open_log(root) as reader:
        assert isinstance(reader, PandaSetReader)
        refs = reader.list_frames()
    assert [ref.timestamp_ns for ref in refs] == truth["t_ns"]  # exact decimal seconds -> ns
    assert {ref.log_id for ref in refs} == {"002"}


def test_legacy_pickle_layout_reads_as_the_dataframe_written(sequence):
    root, truth = sequence
    frame = read_dataframe_pickle(root / "lidar" / "00.pkl.gz")
    xyz, intensity, t_points, d = truth["world_points"][0]
    assert list(frame.columns) == ["x", "y", "z", "i", "t", "d"] and frame.index.name == "index"
    np.testing.assert_array_equal(frame[["x", "y", "z"]].to_numpy(), xyz)
    np.testing.assert_array_equal(frame["d"].to_numpy(), d)
    cuboids = read_dataframe_pickle(root / "annotations" / "cuboids" / "00.pkl.gz")
    assert cuboids["uuid"].tolist() == list(CUBOIDS) and cuboids["stationary"].dtype == bool
    # the same bytes are what plain pandas reads (trusted here: we wrote them)
    with gzip.open(root / "lidar" / "00.pkl.gz") as handle:
        assert pd.read_pickle(handle).equals(frame)


def test_points_are_moved_to_ego_with_product_axes(sequence):
    root, truth = sequence
    reader = open_log(root)
    for k, ref in enumerate(reader.list_frames()):
        frame = reader.load_frame(ref)
        xyz, intensity, t_points, d = truth["world_points"][k]
        assert frame.world_SE3_ego.allclose(world_SE3_ego_at(ref.timestamp_ns), atol_rad=1e-12, atol_m=1e-9)
        assert list(frame.lidars)[0] == "pandar64" == frame.lidar.sensor
        sweep = frame.lidars["pandar64"]
        assert sweep.columns == PANDASET_LIDAR_COLUMNS and sweep.time_offsets_ns is None
        mine = d == 0
        expected_ego = world_SE3_ego_at(ref.timestamp_ns).inverse().transform_points(xyz[mine])
        np.testing.assert_allclose(sweep.xyz, expected_ego, atol=2e-5)
        np.testing.assert_array_equal(sweep.column("intensity"), intensity[mine])
        np.testing.assert_allclose(sweep.column("time_offset_ns"), (t_points[mine] - ref.timestamp_ns / 1e9) * 1e9, atol=300)
        # the two planted points: 10 m ahead is ego +x, 5 m to the left is ego +y (x forward, y left)
        n_boxes = sum(spec[7] for spec in CUBOIDS.values())
        np.testing.assert_allclose(sweep.xyz[n_boxes + 150 : n_boxes + 152], [[10.0, 0.0, 0.0], [0.0, 5.0, 0.0]], atol=2e-5)
        world_again = frame.world_SE3_ego.transform_points(sweep.xyz.astype(np.float64))
        np.testing.assert_allclose(world_again, xyz[mine], atol=1e-4)
        if k < 2:
            gt = frame.lidars["pandar_gt"]
            assert gt.num_points == 20 and frame.rig.ego_SE3_lidar("pandar_gt") == SE3.identity()
            assert (gt.column("x") > 49).all()
        else:
            assert "pandar_gt" not in frame.lidars  # no PandarGT points in this frame: no empty sweep


def test_camera_rig_removes_the_ego_motion_between_lidar_and_camera_times(sequence):
    root, truth = sequence
    reader = open_log(root)
    for k, ref in enumerate(reader.list_frames()):
        frame = reader.load_frame(ref)
        camera = frame.rig.cameras["front_camera"]
        # the camera fires 20 ms after the sweep while the car drives 50 m/s: a naive
        # world_SE3_ego(t_lidar)^-1 @ world_SE3_camera would be 1 m off
        assert camera.ego_SE3_camera.allclose(EGO_SE3_FRONT_CAMERA, atol_rad=1e-9, atol_m=1e-6)
        assert (camera.model.fx_px, camera.model.fy_px, camera.model.cx_px, camera.model.cy_px) == (35.0, 36.0, 19.5, 11.5)
        assert (camera.model.width_px, camera.model.height_px) == (40, 24) and camera.model.distortion_model == "pinhole"
        image = frame.images["front_camera"]
        assert image.timestamp_ns == truth["cam_t_ns"][k] and image.decode().shape == (24, 40, 3)


def _expected_ego_box(spec, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    _, (w, l, h), centre, velocity, yaw, *_ = spec
    world_SE3_ego = world_SE3_ego_at(T0_NS + k * PERIOD_NS)
    centre_ego = world_SE3_ego.inverse().transform_points(np.add(centre, np.multiply(velocity, k))[None])[0]
    length_axis_world = np.array([-np.sin(yaw), np.cos(yaw), 0.0])  # PandaSet: yaw 0 = +y, pi/2 = -x
    length_axis_ego = world_SE3_ego.inverse().rotate_vectors(length_axis_world[None])[0]
    return centre_ego, np.array([l, w, h]), float(np.arctan2(length_axis_ego[1], length_axis_ego[0]))


@pytest.mark.parametrize("primary", ["pandar64", "pandar_gt"])
def test_cuboids_in_product_convention_with_the_primary_lidars_siblings(sequence, primary):
    root, _ = sequence
    reader = open_log(root, primary_lidar=primary)
    kept = {uuid for uuid, spec in CUBOIDS.items() if spec[5] in (-1, 0 if primary == "pandar64" else 1)}
    for k, ref in enumerate(reader.list_frames()):
        frame = reader.load_frame(ref)
        boxes = frame.annotations
        assert boxes.frame == "ego" and {reader.uuid(i) for i in boxes.track_ids.tolist()} == kept
        assert list(frame.lidars)[0] == primary or (primary == "pandar_gt" and k == 2)
        for uuid in kept:
            spec = CUBOIDS[uuid]
            i = int(np.flatnonzero(boxes.track_ids == track_id_from_string(uuid))[0])
            centre, lwh, yaw = _expected_ego_box(spec, k)
            np.testing.assert_allclose(boxes.centers_m[i], centre, atol=1e-9)
            np.testing.assert_allclose(boxes.sizes_m[i], lwh)
            np.testing.assert_allclose(np.angle(np.exp(1j * (boxes.yaws_rad[i] - yaw))), 0.0, atol=1e-9)
            assert boxes.source_labels[i] == spec[0] and boxes.labels[i] == product_class(spec[0], "pandaset")  # the dataset name kept, the product class used
            if primary == "pandar64":
                # points planted inside the cuboid in its own PandaSet frame are the ones counted
                assert boxes.num_lidar_points[i] == spec[7]


def test_round_trip_through_the_writer(sequence, tmp_path):
    """Frames read, written back in the PandaSet layout (world frame, PandaSet box convention), read again."""
    root, _ = sequence
    reader = open_log(root)
    frames = [reader.load_frame(ref) for ref in reader.list_frames()]
    copy = tmp_path / "copy" / "002"
    write_pandaset(copy, frames, reader)
    again = open_log(copy)
    for frame, ref in zip(frames, again.list_frames()):
        assert ref.timestamp_ns == frame.timestamp_ns
        other = again.load_frame(ref)
        assert other.world_SE3_ego.allclose(frame.world_SE3_ego, atol_rad=1e-12, atol_m=1e-9)
        for name, sweep in frame.lidars.items():
            np.testing.assert_allclose(other.lidars[name].points, sweep.points, atol=1e-4)
        np.testing.assert_allclose(other.annotations.centers_m, frame.annotations.centers_m, atol=1e-9)
        np.testing.assert_allclose(other.annotations.sizes_m, frame.annotations.sizes_m)
        np.testing.assert_allclose(other.annotations.yaws_rad, frame.annotations.yaws_rad, atol=1e-9)
        np.testing.assert_array_equal(other.annotations.track_ids, frame.annotations.track_ids)
        np.testing.assert_array_equal(other.annotations.num_lidar_points, frame.annotations.num_lidar_points)
        assert other.rig.cameras["front_camera"].ego_SE3_camera.allclose(frame.rig.cameras["front_camera"].ego_SE3_camera, atol_rad=1e-9, atol_m=1e-6)
        assert other.images["front_camera"].data == frame.images["front_camera"].data


def write_pandaset(root: Path, frames, reader: PandaSetReader) -> None:
    """A minimal PandaSet writer (today's pandas, object columns) from product frames."""
    for folder in ("lidar", "camera/front_camera", "annotations/cuboids"):
        (root / folder).mkdir(parents=True)
    poses, times, cam_poses, cam_times = [], [], [], []
    for k, frame in enumerate(frames):
        t_s = frame.timestamp_ns / 1e9
        poses.append(pose_json(frame.world_SE3_ego.compose(SE3(EGO_R_PANDAR, np.zeros(3)))))
        times.append(frame.timestamp_ns)
        parts = []
        for sensor_id, name in ((0, "pandar64"), (1, "pandar_gt")):
            if name in frame.lidars:
                sweep = frame.lidars[name]
                world = frame.world_SE3_ego.transform_points(sweep.xyz.astype(np.float64))
                parts.append(
                    pd.DataFrame(
                        {
                            "x": world[:, 0],
                            "y": world[:, 1],
                            "z": world[:, 2],
                            "i": sweep.column("intensity").astype(np.float64),
                            "t": t_s + sweep.column("time_offset_ns").astype(np.float64) / 1e9,
                            "d": np.full(sweep.num_points, sensor_id, dtype=np.int64),
                        }
                    )
                )
        lidar = pd.concat(parts, ignore_index=True)
        lidar.columns = pd.Index(list(lidar.columns), dtype=object)
        lidar.to_pickle(root / "lidar" / f"{k:02d}.pkl.gz")
        boxes = frame.annotations.transform(frame.world_SE3_ego, "world")
        cuboids = pd.DataFrame(
            {
                "yaw": boxes.yaws_rad - np.pi / 2,
                "position.x": boxes.centers_m[:, 0],
                "position.y": boxes.centers_m[:, 1],
                "position.z": boxes.centers_m[:, 2],
                "dimensions.x": boxes.sizes_m[:, 1],
                "dimensions.y": boxes.sizes_m[:, 0],
                "dimensions.z": boxes.sizes_m[:, 2],
            }
        )
        cuboids["uuid"] = pd.Series([reader.uuid(i) for i in boxes.track_ids.tolist()], dtype=object)
        cuboids["label"] = pd.Series([str(label) for label in boxes.labels], dtype=object)
        cuboids.columns = pd.Index(list(cuboids.columns), dtype=object)
        cuboids.to_pickle(root / "annotations" / "cuboids" / f"{k:02d}.pkl.gz")
        image = frame.images["front_camera"]
        (root / "camera" / "front_camera" / f"{k:02d}.jpg").write_bytes(image.data)
        cam_times.append(image.timestamp_ns)
        world_SE3_ego_at_image = world_SE3_ego_at(image.timestamp_ns)
        cam_poses.append(pose_json(world_SE3_ego_at_image.compose(frame.rig.cameras["front_camera"].ego_SE3_camera)))
    (root / "lidar" / "poses.json").write_text(json.dumps(poses))
    (root / "lidar" / "timestamps.json").write_text(seconds_json(times))
    (root / "camera" / "front_camera" / "poses.json").write_text(json.dumps(cam_poses))
    (root / "camera" / "front_camera" / "timestamps.json").write_text(seconds_json(cam_times))
    model = frames[0].rig.cameras["front_camera"].model
    (root / "camera" / "front_camera" / "intrinsics.json").write_text(json.dumps({"fx": model.fx_px, "fy": model.fy_px, "cx": model.cx_px, "cy": model.cy_px}))


def test_protocol_2_pickles_read_too(tmp_path):
    root = tmp_path / "011"
    make_sequence(root, np.random.default_rng(2), protocol=2)
    reader = open_log(root)
    frame = reader.load_frame(reader.list_frames()[0])
    assert len(frame.annotations) == 3 and frame.lidar.num_points > 150


def test_a_pickle_that_calls_os_system_is_refused(sequence, tmp_path):
    root, _ = sequence
    marker = tmp_path / "pwned"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    path = root / "lidar" / "01.pkl.gz"
    path.write_bytes(gzip.compress(payload))
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"lidar/01.pkl.gz: pickle: refused to load global os.system"):
        reader.load_frame(reader.list_frames()[1])
    assert not marker.exists()
    # a reduce hidden inside an otherwise valid DataFrame pickle is refused the same way
    buffer = io.BytesIO()
    evil = legacy_dataframe({"x": np.zeros(2)})
    evil.state["attrs"] = _Reduce(_Global("builtins", "eval"), ("__import__('os').system('touch " + str(marker) + "')",))
    _LegacyPickler(buffer, protocol=4).dump(evil)
    path.write_bytes(gzip.compress(buffer.getvalue()))
    with pytest.raises(LogFormatError, match=r"01.pkl.gz: pickle: refused to load global builtins.eval"):
        reader.load_frame(reader.list_frames()[1])
    assert not marker.exists()


def test_bad_input_names_the_file_and_the_field(sequence):
    root, truth = sequence
    pristine = root.parent / "pristine"
    shutil.copytree(root, pristine)

    def fresh() -> Path:
        shutil.rmtree(root)
        shutil.copytree(pristine, root)
        return root

    lidar0 = root / "lidar" / "00.pkl.gz"
    xyz, intensity, t_points, d = truth["world_points"][0]
    # truncated file
    lidar0.write_bytes(lidar0.read_bytes()[:200])
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"00.pkl.gz: gzip: not a complete gzip stream"):
        reader.load_frame(reader.list_frames()[0])
    # a complete gzip of a truncated pickle
    with gzip.open(pristine / "lidar" / "00.pkl.gz") as handle:
        raw = handle.read()
    lidar0.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(LogFormatError, match=r"00.pkl.gz: pickle: not a readable pandas pickle"):
        reader.load_frame(reader.list_frames()[0])
    # missing column
    write_legacy_pickle(lidar0, {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "i": intensity, "t": t_points}, "index")
    with pytest.raises(LogFormatError, match=r"00.pkl.gz: d: missing column"):
        reader.load_frame(reader.list_frames()[0])
    # wrong column type
    write_legacy_pickle(lidar0, {"x": xyz[:, 0].astype(str).astype(object), "y": xyz[:, 1], "z": xyz[:, 2], "i": intensity, "t": t_points, "d": d}, "index")
    with pytest.raises(LogFormatError, match=r"00.pkl.gz: x: expected a numeric \(float\) column, got dtype object"):
        reader.load_frame(reader.list_frames()[0])
    # unknown sensor id
    write_legacy_pickle(lidar0, {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "i": intensity, "t": t_points, "d": d + 2}, "index")
    with pytest.raises(LogFormatError, match=r"00.pkl.gz: d: expected sensor ids 0 \(Pandar64\) or 1 \(PandarGT\), got \[2, 3\]"):
        reader.load_frame(reader.list_frames()[0])
    # a pickle of something else than a DataFrame
    lidar0.write_bytes(gzip.compress(pickle.dumps([1, 2, 3])))
    with pytest.raises(LogFormatError, match=r"00.pkl.gz: pickle: expected a pandas DataFrame, got list"):
        reader.load_frame(reader.list_frames()[0])
    # today's pandas string columns (pyarrow-backed) are outside the allow-list, and say so
    cuboids0 = fresh() / "annotations" / "cuboids" / "00.pkl.gz"
    pd.DataFrame({"uuid": ["a"], "label": ["Car"]}).to_pickle(cuboids0)
    reader = open_log(root)
    if pd.DataFrame({"s": ["a"]})["s"].dtype != object:
        with pytest.raises(LogFormatError, match=r"cuboids/00.pkl.gz: pickle: refused to load global pandas"):
            reader.load_frame(reader.list_frames()[0])
    # missing or inconsistent JSON tables
    (fresh() / "lidar" / "poses.json").unlink()
    with pytest.raises(LogFormatError, match=r"lidar/poses.json: missing required PandaSet file"):
        PandaSetReader(str(root))
    (fresh() / "lidar" / "timestamps.json").write_text(seconds_json([T0_NS]))
    with pytest.raises(LogFormatError, match=r"lidar/timestamps.json: expected one entry per LiDAR file \(3 .pkl.gz files\), got 1 timestamps"):
        open_log(root)
    (fresh() / "camera" / "front_camera" / "intrinsics.json").write_text("{fx: 1")
    reader = open_log(root)
    with pytest.raises(LogFormatError, match=r"intrinsics.json: not JSON"):
        reader.load_frame(reader.list_frames()[0])
    poses = json.loads((fresh() / "lidar" / "poses.json").read_text())
    poses[1]["heading"] = {"w": 2.0, "x": 0.0, "y": 0.0, "z": 0.0}
    (root / "lidar" / "poses.json").write_text(json.dumps(poses))
    with pytest.raises(LogFormatError, match=r"lidar/poses.json: \[1\].heading: .*unit quaternion"):
        open_log(root)

"""Frame validation and the plain ingest functions (no Beam)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ConfigError, LogFormatError
from av_pipeline.ingest import INDEX_COLUMNS, expand_log_patterns, frame_index_row, index_schema, parse_reader_options
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep, OnboardPerception
from av_pipeline.validate import CHECKS, FrameValidationError, split_out_of_order, validate_frame
from calibration import SE3
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig

COLUMNS = ("x", "y", "z", "intensity")


def _png(width_px: int, height_px: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (height_px, width_px, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _rig(camera_size: tuple[int, int] = (16, 12)) -> SensorRig:
    w, h = camera_size
    model = CameraModel(width_px=w, height_px=h, fx_px=20.0, fy_px=20.0, cx_px=w / 2, cy_px=h / 2)
    return SensorRig(cameras={"front": RigCamera(model, SE3.identity())}, lidars={"top": SE3.identity(), "rear": SE3.identity()})


def _points(n: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(-10, 10, (n, 4)).astype(np.float32)


def _frame(points: np.ndarray | None = None, image: bytes | None = None, size: tuple[int, int] = (16, 12), **kwargs) -> Frame:
    lidars = {} if points is None else {"top": LidarSweep("top", 1000, points, COLUMNS)}
    images = {} if image is None else {"front": CameraImage("front", 1000, "png", image, size[0], size[1], source="/logs/a/front/0.png")}
    kwargs.setdefault("rig", _rig())
    return Frame("log_a", 1000, lidars=lidars, images=images, source_uri="/logs/a#0", **kwargs)


REF = FrameRef("/logs/a", "log_a", 0, 1000, "fake")


def test_valid_frame_stats_and_index_row() -> None:
    pose = SE3.from_wxyz([np.cos(0.25), 0.0, 0.0, np.sin(0.25)], [1.0, 2.0, 3.0])
    annotations = Cuboids.from_arrays("ego", np.zeros((3, 3)), np.ones((3, 3)), np.zeros(3), ["car"] * 3)
    onboard = OnboardPerception(Cuboids.from_arrays("ego", np.zeros((2, 3)), np.ones((2, 3)), np.zeros(2), ["car"] * 2))
    frame = _frame(_points(50), _png(16, 12), world_SE3_ego=pose, annotations=annotations, onboard=onboard)

    stats = validate_frame(frame, REF)
    assert dict(stats.lidar_num_points) == {"top": 50}
    assert dict(stats.image_sizes_px) == {"front": (16, 12)}

    row = frame_index_row(REF, frame)
    assert list(row) == list(INDEX_COLUMNS)
    assert row["log_id"] == "log_a" and row["timestamp_ns"] == 1000 and row["frame_index"] == 0
    assert row["lidar_names"] == ["top"] and row["lidar_num_points"] == [50]
    assert row["camera_names"] == ["front"] and row["image_widths_px"] == [16] and row["image_heights_px"] == [12]
    assert row["num_annotations"] == 3 and row["num_onboard_objects"] == 2
    np.testing.assert_allclose(row["pose_translation_m"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(row["pose_rotation_wxyz"], [np.cos(0.25), 0.0, 0.0, np.sin(0.25)], atol=1e-12)
    assert row["source_uri"] == "/logs/a#0" and row["log_uri"] == "/logs/a" and row["reader"] == "fake"
    # The row fits the Parquet schema as is.
    import pyarrow as pa

    table = pa.Table.from_pylist([row], schema=index_schema())
    assert table.num_rows == 1 and table.schema.names == list(INDEX_COLUMNS)


def test_frame_without_pose_or_labels_has_nulls() -> None:
    row = frame_index_row(REF, _frame(_points(5)))
    assert row["pose_translation_m"] is None and row["pose_rotation_wxyz"] is None
    assert row["num_annotations"] is None and row["num_onboard_objects"] is None
    assert row["camera_names"] == [] and row["image_widths_px"] == []


@pytest.mark.parametrize(
    ("make_frame", "check", "path", "field", "match"),
    [
        (lambda: _frame(np.zeros((0, 4), np.float32)), "empty_sweep", "/logs/a#0", "lidar 'top' points", "0 points"),
        (lambda: _frame(None, None), "empty_frame", "/logs/a#0", "sensors", "no LiDAR sweep and no camera image"),
        (lambda: _frame(_points(5), b"\x89PNG\r\n\x1a\n garbage"), "image_decode", "/logs/a/front/0.png", "camera 'front' image", "do not decode"),
        (lambda: _frame(_points(5), _png(16, 12), size=(16, 10)), "image_size", "/logs/a/front/0.png", "camera 'front' image", "expected 16x10, decoded 16x12"),
        (
            lambda: _frame(_points(5), _png(20, 12), size=(20, 12)),
            "image_size",
            "/logs/a/front/0.png",
            "camera 'front' image",
            "decoded 20x12 but the camera model is calibrated for 16x12",
        ),
    ],
)
def test_each_rule_names_file_field_and_problem(make_frame, check: str, path: str, field: str | None, match: str) -> None:
    with pytest.raises(FrameValidationError, match=match) as info:
        validate_frame(make_frame(), REF)
    assert info.value.check == check
    assert info.value.path == path
    assert info.value.field == field
    assert str(info.value).startswith(path)
    assert isinstance(info.value, LogFormatError)


def test_non_finite_points_counts_rows_and_columns() -> None:
    points = _points(100)
    points[7, 0] = np.nan
    points[9, 3] = np.inf
    points[9, 1] = -np.inf
    with pytest.raises(FrameValidationError, match=r"2 of 100 points have NaN/inf values \(columns \['x', 'y', 'intensity'\]; first at row 7\)") as info:
        validate_frame(_frame(points))
    assert info.value.check == "non_finite_points"


def test_key_mismatch_between_ref_and_frame() -> None:
    other = FrameRef("/logs/a", "log_a", 0, 999, "fake")
    with pytest.raises(FrameValidationError, match=r"expected \(log_id, timestamp_ns\) \('log_a', 999\)") as info:
        validate_frame(_frame(_points(3)), other)
    assert info.value.check == "key_mismatch"


def test_missing_calibration_is_refused_when_the_frame_is_built() -> None:
    # A sensor without calibration never reaches validation: the Frame record refuses it,
    # and ingest dead-letters that at the load stage.
    rig = SensorRig(cameras={}, lidars={"top": SE3.identity()})
    with pytest.raises(Exception, match="camera 'front' is not in the rig"):
        _frame(_points(3), _png(16, 12), rig=rig)


def test_unknown_check_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="check: expected one of"):
        FrameValidationError("f", None, "m", "no_such_check")
    assert "timestamp_order" in CHECKS


def test_split_out_of_order_keeps_increasing_frames() -> None:
    times = [10, 20, 20, 15, 30, 25, 40]
    refs = [FrameRef("/logs/a", "log_a", i, t, "fake") for i, t in enumerate(times)]
    kept, rejected = split_out_of_order(refs)
    assert [r.index for r in kept] == [0, 1, 4, 6]
    assert [r.index for r, _ in rejected] == [2, 3, 5]
    kept_times = [r.timestamp_ns for r in kept]
    assert kept_times == sorted(set(kept_times))
    ref, error = rejected[0]
    assert error.check == "timestamp_order" and error.path == "/logs/a" and error.field == "timestamp_ns"
    assert "frame 2 at 20 ns is not after frame 1 at 20 ns" in str(error)
    assert "frame 5 at 25 ns is not after frame 4 at 30 ns" in str(rejected[2][1])
    assert split_out_of_order([]) == ([], [])


def test_expand_log_patterns(tmp_path) -> None:
    (tmp_path / "a.mcap").write_bytes(b"")
    (tmp_path / "b.mcap").write_bytes(b"")
    (tmp_path / "kitti").mkdir()
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "deep" / "x" / "c.mcap").write_bytes(b"")
    uris = expand_log_patterns([str(tmp_path / "*.mcap"), str(tmp_path / "kitti"), str(tmp_path / "a.mcap")])
    assert uris == [str(tmp_path / "a.mcap"), str(tmp_path / "b.mcap"), str(tmp_path / "kitti")]
    assert expand_log_patterns([str(tmp_path / "**" / "*.mcap")]) == sorted(
        [str(tmp_path / "a.mcap"), str(tmp_path / "b.mcap"), str(tmp_path / "deep" / "x" / "c.mcap")]
    )
    with pytest.raises(ConfigError, match=r"'.*\*\.bag' matches no file or directory"):
        expand_log_patterns([str(tmp_path / "*.mcap"), str(tmp_path / "*.bag")])
    with pytest.raises(ConfigError, match="matches no file"):
        expand_log_patterns([str(tmp_path / "missing.mcap")])
    with pytest.raises(ConfigError, match="at least one"):
        expand_log_patterns([])
    with pytest.raises(ConfigError, match="local"):
        expand_log_patterns(["gs://bucket/logs/*.mcap"])


def test_parse_reader_options() -> None:
    assert parse_reader_options(["lidar_topic=/points", 'cams=["/a", "/b"]', "n=3", "flag=true", "s=a=b"]) == {
        "lidar_topic": "/points",
        "cams": ["/a", "/b"],
        "n": 3,
        "flag": True,
        "s": "a=b",
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE, got 'oops'"):
        parse_reader_options(["oops"])

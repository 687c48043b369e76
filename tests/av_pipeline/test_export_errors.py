"""Bad input to the exporters: each error is an :class:`ExportError` that names the case or
frame and the field, and says what was expected."""

from __future__ import annotations

from dataclasses import replace

import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import AVPipelineError
from av_pipeline.export import ExportError, export_case, export_log_prelabels
from tests.av_pipeline.export_fixtures import T0_NS, boxes, tiny_case, tiny_frame

CASE = rf"case tiny@{T0_NS}"


def _raises(match, *args, **kwargs) -> ExportError:
    with pytest.raises(ExportError, match=match) as info:
        export_case(*args, **kwargs)
    assert isinstance(info.value, AVPipelineError) and isinstance(info.value, ValueError)
    return info.value


def test_wrong_frame_count(tmp_path):
    frames = [tiny_frame(k) for k in range(2)]
    error = _raises(rf"^{CASE}: frames: expected the 3 frames of the window 0\.\.2 in order, got 2", tiny_case(0, 2), frames, None, tmp_path)
    assert (error.where, error.field) == (f"case tiny@{T0_NS}", "frames")
    _raises(rf"^{CASE}: frame_indices: expected one index per frame \(2\), got 1", tiny_case(0, 2), frames, None, tmp_path, frame_indices=[0])
    _raises(rf"^{CASE}: frames: no frame to export", tiny_case(0, 2), [], None, tmp_path)
    assert not (tmp_path / "cases").exists()  # nothing half-written


def test_a_frame_of_another_log(tmp_path):
    others = [tiny_frame(k, log_id="other") for k in range(3)]
    error = _raises(rf"^{CASE}: frames: frame other@{T0_NS} \(#0\) belongs to log 'other', the case to 'tiny'", tiny_case(0, 2), others, None, tmp_path)
    assert error.field == "frames"
    mixed = [tiny_frame(0), tiny_frame(1, log_id="other"), tiny_frame(2)]
    error = _raises(rf"^frame other@{T0_NS + 100_000_000}: log_id: frames of two logs \('tiny' first\)", tiny_case(0, 2), mixed, None, tmp_path)
    assert (error.where, error.field) == (f"frame other@{T0_NS + 100_000_000}", "log_id")


def test_frames_out_of_order_or_at_other_times(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    order = rf"^frame tiny@{T0_NS + 100_000_000}: timestamp_ns: frames must be in time order \(previous {T0_NS + 200_000_000}\)"
    _raises(order, tiny_case(0, 2), frames[::-1], None, tmp_path)
    shifted = replace(tiny_case(0, 2), first_timestamp_ns=T0_NS + 1)
    _raises(rf"{CASE}: frames: frame tiny@{T0_NS} \(#0\): the case puts frame 0 at {T0_NS + 1} ns", shifted, frames, None, tmp_path)
    _raises(rf"{CASE}: frame_indices: frame tiny@{T0_NS + 200_000_000} \(#5\) is outside the window 0\.\.2",
            tiny_case(0, 2), frames, None, tmp_path, frame_indices=[0, 1, 5])  # fmt: skip


def test_missing_camera_image_for_kitti(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    frames[1] = replace(frames[1], images={"rear": frames[1].images["rear"]})
    error = _raises(rf"^frame tiny@{T0_NS + 100_000_000} \(#1\): images\['front'\]: no image of camera 'front' \(images: \['rear'\]\)",
                    tiny_case(0, 2), frames, None, tmp_path, formats=("kitti",))  # fmt: skip
    assert error.field == "images['front']"
    # the other formats do not need that image
    assert export_case(tiny_case(0, 2), frames, None, tmp_path, formats=("openlabel", "mcap")).paths.keys() == {"openlabel", "mcap"}


def test_kitti_needs_a_lidar_and_a_known_camera(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    no_lidar = [replace(f, lidars={}) for f in frames]
    _raises(rf"^frame tiny@{T0_NS} \(#0\): lidars: no LiDAR sweep", tiny_case(0, 2), no_lidar, None, tmp_path, formats=("kitti",))
    _raises(rf"^frame tiny@{T0_NS}: rig.cameras: no camera 'side' in the rig \['front', 'rear'\]",
            tiny_case(0, 2), frames, None, tmp_path / "side", formats=("kitti",), camera="side")  # fmt: skip


def test_unknown_format(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    error = _raises(rf"^{CASE}: formats: expected some of \['openlabel', 'kitti', 'mcap'\], got \['kitti', 'coco'\]",
                    tiny_case(0, 2), frames, None, tmp_path, formats=("kitti", "coco"))  # fmt: skip
    assert error.field == "formats"
    _raises(rf"^{CASE}: formats: expected some of .*, got \[\]", tiny_case(0, 2), frames, None, tmp_path, formats=())
    with pytest.raises(ExportError, match=r"^export_log_prelabels: formats: expected some of \['openlabel', 'kitti'\], got \['mcap'\]"):
        export_log_prelabels(iter(frames), {}, tmp_path, "mcap")
    assert not any(tmp_path.iterdir())


def test_boxes_in_another_frame_are_refused(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    lidar_boxes = Cuboids.from_arrays("top", [[1.0, 2.0, 0.5]], [[4.0, 2.0, 1.5]], [0.0], ["car"], [0.9])
    _raises(rf"^frame tiny@{T0_NS}: shadow: expected cuboids in 'ego', got frame 'top'",
            tiny_case(0, 2), frames, {frames[0].timestamp_ns: lidar_boxes}, tmp_path)  # fmt: skip
    with pytest.raises(ExportError, match=r"^export_log_prelabels: frames: no frame to export"):
        export_log_prelabels(iter([]), {frames[0].timestamp_ns: boxes(0)}, tmp_path, "kitti")

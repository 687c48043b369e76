"""OpenLABEL export: files pass the ASAM OpenLABEL 1.0 JSON schema and openlabel-checker, and
hold exactly the boxes, poses, sensors and events that went in."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import jsonschema
import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.export import ExportError, export_case, export_log_prelabels
from av_pipeline.export.openlabel import check_openlabel, openlabel_schema
from av_pipeline.records import OnboardPerception
from calibration import SE3
from tests.av_pipeline.export_fixtures import T0_NS, boxes, bundled_export, pitched_rig, tiny_case, tiny_frame


def _export(tmp_path, frames, shadow, case=None):
    case = case or tiny_case(0, len(frames) - 1)
    exported = export_case(case, frames, shadow, tmp_path, formats=("openlabel",))
    path = tmp_path / exported.paths["openlabel"]
    return exported, path, json.loads(path.read_text())


def _assert_valid(path, document):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(openlabel_schema()).iter_errors(document)]
    assert errors == []
    assert check_openlabel(path) == []  # no error and no warning
    run = subprocess.run([sys.executable, "-m", "openlabel_checker", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "no issues found" in run.stdout, run.stdout + run.stderr


def _decoded(document, frame_index, source):
    """``(centres, sizes, yaws, scores, track ids, classes)`` of one source's cuboids in one frame."""
    rows = []
    for entry in document["openlabel"]["frames"][str(frame_index)].get("objects", {}).values():
        (cuboid,) = entry["object_data"]["cuboid"]
        texts = {t["name"]: t["val"] for t in cuboid["attributes"]["text"]}
        nums = {n["name"]: n["val"] for n in cuboid["attributes"]["num"]}
        if texts["source"] == source:
            x, y, z, qx, qy, qz, qw, sx, sy, sz = cuboid["val"]
            assert (qx, qy) == (0.0, 0.0) and cuboid["coordinate_system"] == "ego"
            rows.append(([x, y, z], [sx, sy, sz], 2 * np.arctan2(qz, qw), nums["score"], nums["track_id"], texts["class"]))
    rows.sort(key=lambda r: (r[0][0], r[0][1]))
    return rows


def _expected(cuboids: Cuboids):
    rows = [(c.tolist(), s.tolist(), y, float(sc), int(t), str(lb)) for c, s, y, sc, t, lb in
            zip(cuboids.centers_m, cuboids.sizes_m, cuboids.yaws_rad, cuboids.scores, cuboids.track_ids, cuboids.labels)]  # fmt: skip
    rows.sort(key=lambda r: (r[0][0], r[0][1]))
    return rows


def test_case_file_passes_the_asam_schema_and_openlabel_checker(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {f.timestamp_ns: boxes(k, offset_m=0.3) for k, f in enumerate(frames)}
    exported, path, document = _export(tmp_path, frames, shadow)
    _assert_valid(path, document)
    root = document["openlabel"]
    assert root["metadata"]["schema_version"] == "1.0.0" and root["metadata"]["tagged_file"] == "tiny.mcap"
    assert root["metadata"]["av_pipeline"]["case_id"] == exported.case_id
    assert root["frame_intervals"] == [{"frame_start": 0, "frame_end": 2}]


def test_every_box_reads_back_from_the_cuboid_values(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {f.timestamp_ns: boxes(k, offset_m=0.3) for k, f in enumerate(frames)}
    exported, _, document = _export(tmp_path, frames, shadow)
    for k, frame in enumerate(frames):
        for source, original in (("shadow", shadow[frame.timestamp_ns]), ("onboard", frame.onboard.cuboids)):
            got, want = _decoded(document, k, source), _expected(original)
            assert len(got) == len(want) == 3
            for g, w in zip(got, want):
                np.testing.assert_allclose(g[0], w[0], atol=1e-12)
                np.testing.assert_allclose(g[1], w[1], atol=1e-12)
                assert abs(np.angle(np.exp(1j * (g[2] - w[2])))) < 1e-12
                assert g[3:] == w[3:]
    assert exported.num_boxes == {"shadow": 9, "onboard": 9}
    objects = document["openlabel"]["objects"]
    # tracked boxes are one object over the window; each untracked box (the bus) is an object of its own
    tracked = [o for o in objects.values() if "#" in o["name"]]
    assert len(tracked) == 4 and all(o["frame_intervals"] == [{"frame_start": 0, "frame_end": 2}] for o in tracked)
    assert sum(o["type"] == "bus" for o in objects.values()) == 6 and len(objects) == 10


def test_poses_follow_the_transform_convention_of_the_standard(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    _, _, document = _export(tmp_path, frames, None)
    root = document["openlabel"]
    systems = root["coordinate_systems"]
    assert systems["world"]["parent"] == "" and systems["ego"] == {"type": "local_cs", "parent": "world", "children": ["top", "rear", "front"]}
    point_lidar = np.array([3.0, -2.0, 0.5, 1.0])
    for k, frame in enumerate(frames):
        ego_to_world = root["frames"][str(k)]["frame_properties"]["transforms"]["ego_to_world"]
        assert (ego_to_world["src"], ego_to_world["dst"]) == ("ego", "world")
        world_M_ego = np.reshape(ego_to_world["transform_src_to_dst"]["matrix4x4"], (4, 4))
        ego_M_lidar = np.reshape(systems["top"]["pose_wrt_parent"]["matrix4x4"], (4, 4))
        expected = frame.world_SE3_ego.compose(frame.rig.lidars["top"]).transform_points(point_lidar[None, :3])[0]
        np.testing.assert_allclose((world_M_ego @ ego_M_lidar @ point_lidar)[:3], expected, atol=1e-12)
        assert root["frames"][str(k)]["frame_properties"]["timestamp"] == f"{(T0_NS + k * 10**8) // 10**9}.{(k * 10**8) % 10**9:09d}"
    camera = frames[0].rig.cameras["front"]
    pinhole = root["streams"]["front"]["stream_properties"]["intrinsics_pinhole"]
    np.testing.assert_array_equal(np.reshape(pinhole["camera_matrix"], (3, 4))[:, :3], camera.model.K)
    assert pinhole["distortion_coeffs"] == list(camera.model.distortion) and (pinhole["width_px"], pinhole["height_px"]) == (160, 120)
    assert root["streams"]["top"]["type"] == "lidar"
    np.testing.assert_allclose(np.reshape(systems["front"]["pose_wrt_parent"]["matrix4x4"], (4, 4)), camera.ego_SE3_camera.as_matrix())


def test_events_are_actions_linked_to_their_objects(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {f.timestamp_ns: boxes(k, offset_m=0.3) for k, f in enumerate(frames)}
    _, _, document = _export(tmp_path, frames, shadow)
    root = document["openlabel"]
    actions = root["actions"]
    assert [a["type"] for a in actions.values()] == ["ghost", "uncertain_shadow"]
    ghost_texts = {t["name"]: t["val"] for t in actions["0"]["action_data"]["text"]}
    assert ghost_texts["reason"].startswith("ghost: onboard car #1") and actions["0"]["frame_intervals"] == [{"frame_start": 0, "frame_end": 2}]
    assert set(root["frames"]["2"]["actions"]) == {"0", "1"} and set(root["frames"]["0"]["actions"]) == {"0"}
    linked = {r["rdf_subjects"][0]["uid"]: root["objects"][r["rdf_objects"][0]["uid"]]["name"] for r in root["relations"].values()}
    assert linked == {"0": "onboard car #1", "1": "shadow pedestrian #2"}


def test_poses_in_some_frames_only_are_refused_and_no_pose_makes_ego_the_root(tmp_path):
    frames = [tiny_frame(0), tiny_frame(1, pose=False), tiny_frame(2)]
    with pytest.raises(ExportError, match=r"frame tiny@1700000000100000000 \(#1\): world_SE3_ego: some frames"):
        _export(tmp_path, frames, None)
    frames = [tiny_frame(k, pose=False) for k in range(3)]
    _, path, document = _export(tmp_path / "nopose", frames, None)
    _assert_valid(path, document)
    assert "world" not in document["openlabel"]["coordinate_systems"] and document["openlabel"]["coordinate_systems"]["ego"]["parent"] == ""


def test_boxes_that_share_a_track_in_one_frame_are_all_kept_and_nan_is_refused(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    twin = boxes(1, tracks=(7, 7, 7))
    frames[1] = replace(frames[1], onboard=OnboardPerception(twin))
    _, path, document = _export(tmp_path, frames, None)
    _assert_valid(path, document)
    assert len(_decoded(document, 1, "onboard")) == 3
    bad = boxes(0)  # Cuboids refuses NaN when built; a record corrupted afterwards is refused by the exporter too
    object.__setattr__(bad, "scores", np.array([0.9, np.nan, 0.4], np.float32))
    with pytest.raises(ExportError, match=r"shadow box 1: expected finite"):
        _export(tmp_path / "nan", frames, {frames[0].timestamp_ns: bad})


def test_a_sensor_that_moves_between_frames_gets_a_frame_transform(tmp_path):
    rig = pitched_rig()
    moved = replace(rig, lidars={"top": SE3.from_yaw_translation(0.0, [1.2, 0.0, 1.9])})
    frames = [tiny_frame(0, rig=rig), tiny_frame(1, rig=moved)]
    _, path, document = _export(tmp_path, frames, None, tiny_case(0, 1))
    _assert_valid(path, document)
    transforms = document["openlabel"]["frames"]["1"]["frame_properties"]["transforms"]
    assert "top_to_ego" in transforms and "top_to_ego" not in document["openlabel"]["frames"]["0"]["frame_properties"]["transforms"]
    np.testing.assert_allclose(np.reshape(transforms["top_to_ego"]["transform_src_to_dst"]["matrix4x4"], (4, 4)), moved.lidars["top"].as_matrix())


def test_whole_log_prelabels_as_openlabel(tmp_path):
    frames = [tiny_frame(k) for k in range(4)]
    shadow = {f.timestamp_ns: boxes(k) for k, f in enumerate(frames) if k != 2}
    exported = export_log_prelabels(iter(frames), shadow, tmp_path, "openlabel")
    document = json.loads(exported.path.read_text())
    _assert_valid(exported.path, document)
    assert exported.path == tmp_path / "openlabel.json" and exported.frames_without_shadow == (2,) and exported.num_boxes == 9
    sources = {t["val"] for f in document["openlabel"]["frames"].values() for o in f.get("objects", {}).values()
               for t in o["object_data"]["cuboid"][0]["attributes"]["text"] if t["name"] == "source"}  # fmt: skip
    assert sources == {"shadow"} and "objects" not in document["openlabel"]["frames"]["2"]


@pytest.mark.slow
def test_bundled_case_passes_the_schema_and_the_checker():
    bundle = bundled_export()
    path = bundle.root / bundle.exported.paths["openlabel"]
    document = json.loads(path.read_text())
    _assert_valid(path, document)
    root = document["openlabel"]
    assert set(root["frames"]) == {"5", "6", "7"} and set(root["streams"]) == {"lidar_top", "front", "left", "right"}
    assert sum(len(f.get("objects", {})) for f in root["frames"].values()) == sum(bundle.exported.num_boxes.values())
    for k, frame in zip((5, 6, 7), bundle.frames):
        assert len(_decoded(document, k, "onboard")) == len(frame.onboard.cuboids)
        assert len(_decoded(document, k, "shadow")) == len(bundle.shadow[frame.timestamp_ns])
    (action,) = root["actions"].values()
    assert action["type"] == "localization_disagreement" and len(root["relations"]["0"]["rdf_objects"]) == 2

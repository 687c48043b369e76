"""Per-case MCAP: opens with the ``mcap`` reader, both box sources decode as foxglove
``SceneUpdate`` (foxglove_schemas_protobuf) in different colours, every event's reason is a
``foxglove.Log`` message, and the product's own ``open_log`` reads the frames back."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from foxglove_schemas_protobuf.Log_pb2 import Log
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from mcap.reader import make_reader

from av_pipeline.boxes import Cuboids
from av_pipeline.export import export_case
from av_pipeline.readers import open_log
from tests.av_pipeline.export_fixtures import boxes, bundled_export, tiny_case, tiny_frame

BOX_TOPICS = {"/shadow/objects": "shadow", "/perception/objects": "onboard"}


def _read_mcap(path):
    """``(summary, {topic: [(log_time_ns, schema name, message encoding, data)]})`` through the mcap reader."""
    by_topic = defaultdict(list)
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            by_topic[channel.topic].append((message.log_time, schema.name, channel.message_encoding, message.data))
    return summary, by_topic


def _cubes(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, set[tuple[float, ...]]]:
    """Centres ``(K, 3)``, sizes ``(K, 3)``, yaws ``(K,)`` and the set of RGBA colours of one SceneUpdate."""
    update = SceneUpdate.FromString(data)
    centres, sizes, yaws, colours = [], [], [], set()
    for entity in update.entities:
        (cube,) = entity.cubes
        p, q = cube.pose.position, cube.pose.orientation
        centres.append([p.x, p.y, p.z])
        sizes.append([cube.size.x, cube.size.y, cube.size.z])
        yaws.append(2 * np.arctan2(q.z, q.w))
        colours.add((round(cube.color.r, 6), round(cube.color.g, 6), round(cube.color.b, 6), round(cube.color.a, 6)))
    return np.reshape(centres, (-1, 3)), np.reshape(sizes, (-1, 3)), np.array(yaws), colours


def _check_case_mcap(path, frames, shadow_by_time, case) -> None:
    summary, by_topic = _read_mcap(path)
    schemas = {channel.topic: summary.schemas[channel.schema_id].name for channel in summary.channels.values()}
    assert schemas["/shadow/objects"] == schemas["/perception/objects"] == "foxglove.SceneUpdate"
    assert schemas["/mining/reasons"] == "foxglove.Log" and schemas["/lidar/points"] == "foxglove.PointCloud"
    times = [entry[0] for entries in by_topic.values() for entry in entries]
    assert min(times) == frames[0].timestamp_ns
    colours_by_source = {}
    for topic, source in BOX_TOPICS.items():
        entries = by_topic[topic]
        expected = {f.timestamp_ns: (shadow_by_time.get(f.timestamp_ns) if source == "shadow" else f.onboard.cuboids) for f in frames}
        expected = {t: b for t, b in expected.items() if b is not None}
        assert [e[0] for e in entries] == sorted(expected)  # one message per frame with a result
        colours = set()
        for log_time, _, encoding, data in entries:
            assert encoding == "protobuf"
            centres, sizes, yaws, message_colours = _cubes(data)
            want = expected[log_time]
            order, want_order = np.lexsort(centres.T[::-1]), np.lexsort(want.centers_m.T[::-1])
            np.testing.assert_allclose(centres[order], want.centers_m[want_order], atol=1e-9)
            np.testing.assert_allclose(sizes[order], want.sizes_m[want_order], atol=1e-9)
            np.testing.assert_allclose(np.angle(np.exp(1j * (yaws[order] - want.yaws_rad[want_order]))), 0.0, atol=1e-9)
            colours |= message_colours
        assert len(colours) == 1, f"{topic}: one colour per source, got {colours}"
        colours_by_source[source] = colours.pop()
    assert colours_by_source["shadow"] != colours_by_source["onboard"]
    logs = [Log.FromString(entry[3]) for entry in by_topic["/mining/reasons"]]
    warnings = [(log.name, log.message) for log in logs if log.level == Log.WARNING]
    assert sorted(warnings) == sorted((e.trigger, e.reason) for e in case.events)
    assert all(log.file == case.case_id for log in logs) and sum(log.level == Log.INFO for log in logs) == 1
    with open_log(str(path)) as log:
        refs = log.list_frames()
        assert [r.timestamp_ns for r in refs] == [f.timestamp_ns for f in frames]
        for ref, frame in zip(refs, frames):
            back = log.load_frame(ref)
            want = frame.onboard.cuboids
            got = back.onboard.cuboids
            np.testing.assert_allclose(got.centers_m, want.centers_m, atol=1e-6)
            np.testing.assert_allclose(got.sizes_m, want.sizes_m, atol=1e-6)
            assert got.labels.tolist() == want.labels.tolist()
            np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
            (name,) = frame.lidars
            np.testing.assert_allclose(back.lidars[name].xyz, frame.lidars[name].xyz, atol=1e-6)
            assert set(back.images) == set(frame.images)
            assert back.world_SE3_ego.allclose(frame.world_SE3_ego, atol_rad=1e-9, atol_m=1e-9)


def test_case_mcap_opens_decodes_and_reads_back(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {frames[0].timestamp_ns: boxes(0, offset_m=0.3), frames[2].timestamp_ns: boxes(2, offset_m=-0.2)}
    case = tiny_case(0, 2)
    exported = export_case(case, frames, shadow, tmp_path, formats=("mcap",))
    assert set(exported.paths) == {"mcap"} and exported.frames_without_shadow == (1,)
    _check_case_mcap(tmp_path / exported.paths["mcap"], frames, shadow, case)


def test_an_empty_shadow_result_is_an_empty_scene_update(tmp_path):
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {f.timestamp_ns: Cuboids.empty("ego") for f in frames}
    exported = export_case(tiny_case(0, 2), frames, shadow, tmp_path, formats=("mcap",))
    _, by_topic = _read_mcap(tmp_path / exported.paths["mcap"])
    assert len(by_topic["/shadow/objects"]) == 3
    assert all(len(SceneUpdate.FromString(entry[3]).entities) == 0 for entry in by_topic["/shadow/objects"])


@pytest.mark.slow
def test_bundled_case_mcap_opens_decodes_and_reads_back():
    bundle = bundled_export()
    _check_case_mcap(bundle.root / bundle.exported.paths["mcap"], bundle.frames, bundle.shadow, bundle.case)

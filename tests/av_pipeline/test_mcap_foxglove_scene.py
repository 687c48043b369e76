"""Foxglove ``SceneUpdate`` semantics of the written MCAP: what a viewer shows at each frame.

The replay below follows the foxglove schema documentation: an entity replaces any prior
entity on the same topic with the same ``id``; a ``SceneEntityDeletion`` (processed before the
entities of its message) removes the entities on its topic older than its timestamp, all of
them (``ALL``) or one ``id`` (``MATCHING_ID``); a non-zero ``lifetime`` removes an entity
``lifetime`` after its timestamp, zero keeps it until it is replaced or deleted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.readers import open_log
from av_pipeline.records import Frame, LidarSweep, OnboardPerception
from av_pipeline.writers import write_foxglove_mcap
from calibration import SE3
from calibration.rig import SensorRig

T0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000

#: Per frame: onboard (track ids, labels) and annotation track ids. Track 2 is missed in
#: frame 1 and comes back in frame 3; frame 2 reports nothing; track 9 ends after frame 0.
ONBOARD = [
    ([1, 2, -1], ["car", "pedestrian", "cyclist"]),
    ([1], ["car"]),
    ([], []),
    ([2, 5], ["pedestrian", "truck"]),
]
ANNOTATIONS = [[1, 2, 9], [1, 2], [1, 2], [1, 2, 5]]


def _boxes(tracks: list[int], labels: list[str], seed: int, scores: bool = True) -> Cuboids:
    rng = np.random.default_rng(seed)
    k = len(tracks)
    return Cuboids.from_arrays(
        "ego",
        rng.normal(0.0, 10.0, (k, 3)),
        rng.uniform(0.5, 5.0, (k, 3)),
        rng.uniform(-np.pi, np.pi, k),
        labels,
        rng.uniform(0.1, 1.0, k) if scores else None,
        tracks,
    )


def _frames() -> list[Frame]:
    frames = []
    rig = SensorRig(cameras={}, lidars={"lidar_top": SE3.identity()})
    for i, ((tracks, labels), truth_tracks) in enumerate(zip(ONBOARD, ANNOTATIONS)):
        t = T0_NS + i * PERIOD_NS
        points = np.random.default_rng(i).normal(0.0, 10.0, (50, 3)).astype(np.float32)
        sweep = LidarSweep("lidar_top", t, points)
        onboard = OnboardPerception(_boxes(tracks, labels, seed=10 + i))
        truth = _boxes(truth_tracks, ["car"] * len(truth_tracks), seed=20 + i, scores=False)
        frames.append(Frame("drive", t, rig, SE3.identity(), {"lidar_top": sweep}, {}, onboard, truth))
    return frames


def _ns(stamp) -> int:
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


def _replay(path: Path, topic: str, query_times_ns: list[int]) -> list[dict[str, object]]:
    """The entities a foxglove viewer shows on ``topic`` at each query time (id -> entity)."""
    from foxglove_schemas_protobuf.SceneEntityDeletion_pb2 import SceneEntityDeletion
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
    from mcap.reader import make_reader

    with path.open("rb") as f:
        updates = [
            (message.log_time, SceneUpdate.FromString(message.data))
            for _, channel, message in make_reader(f).iter_messages(topics=[topic], log_time_order=True)
        ]
    assert updates, f"no messages on {topic}"
    shown: list[dict[str, object]] = []
    scene: dict[str, object] = {}
    position = 0
    for query_ns in query_times_ns:
        while position < len(updates) and updates[position][0] <= query_ns:
            update = updates[position][1]
            for deletion in update.deletions:
                before = _ns(deletion.timestamp)
                for entity_id, entity in list(scene.items()):
                    matches = deletion.type == SceneEntityDeletion.ALL or entity_id == deletion.id
                    if matches and _ns(entity.timestamp) < before:
                        del scene[entity_id]
            for entity in update.entities:
                scene[entity.id] = entity
            position += 1
        alive = {}
        for entity_id, entity in scene.items():
            lifetime_ns = _ns(entity.lifetime)
            if lifetime_ns == 0 or _ns(entity.timestamp) + lifetime_ns > query_ns:
                alive[entity_id] = entity
        shown.append(alive)
    return shown


def _centres(entities: dict[str, object]) -> dict[str, tuple[float, float, float]]:
    return {
        entity_id: tuple(round(v, 9) for v in (e.cubes[0].pose.position.x, e.cubes[0].pose.position.y, e.cubes[0].pose.position.z))
        for entity_id, e in entities.items()
    }


def _expected(boxes: Cuboids) -> dict[str, tuple[float, float, float]]:
    return {
        (str(t) if t >= 0 else f"untracked-{i}"): tuple(round(float(v), 9) for v in boxes.centers_m[i])
        for i, t in enumerate(boxes.track_ids)
    }


@pytest.mark.parametrize("topic", ["/perception/objects", "/annotations/cuboids"])
def test_entities_visible_at_each_frame_are_that_frames_objects(tmp_path: Path, topic: str) -> None:
    frames = _frames()
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, frames)
    # Just before the next frame as well as at the frame: nothing from an earlier frame may linger.
    times = [t for f in frames for t in (f.timestamp_ns, f.timestamp_ns + PERIOD_NS - 1)]
    shown = _replay(path, topic, times)
    for i, frame in enumerate(frames):
        boxes = frame.onboard.cuboids if topic == "/perception/objects" else frame.annotations
        for visible in shown[2 * i : 2 * i + 2]:
            assert _centres(visible) == _expected(boxes), f"frame {i}"


def test_frames_written_out_of_order_show_the_same_scene(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, list(reversed(frames)))
    shown = _replay(path, "/perception/objects", [f.timestamp_ns for f in frames])
    for visible, frame in zip(shown, frames):
        assert _centres(visible) == _expected(frame.onboard.cuboids)


def test_cubes_carry_a_text_label_with_class_track_and_score(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, frames[:1])
    (visible,) = _replay(path, "/perception/objects", [frames[0].timestamp_ns])
    boxes = frames[0].onboard.cuboids
    texts = {entity_id: [t.text for t in e.texts] for entity_id, e in visible.items()}
    assert texts == {
        "1": [f"car #1 {boxes.scores[0]:.2f}"],
        "2": [f"pedestrian #2 {boxes.scores[1]:.2f}"],
        "untracked-2": [f"cyclist {boxes.scores[2]:.2f}"],
    }
    for i, entity in enumerate(visible.values()):
        text, cube = entity.texts[0], entity.cubes[0]
        # Above the box, facing the viewer.
        assert text.billboard
        assert text.pose.position.z > cube.pose.position.z + cube.size.z / 2
        assert (text.pose.position.x, text.pose.position.y) == (cube.pose.position.x, cube.pose.position.y)


def test_ground_truth_labels_have_no_score_in_the_text(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, frames[:1])
    (visible,) = _replay(path, "/annotations/cuboids", [frames[0].timestamp_ns])
    assert sorted(e.texts[0].text for e in visible.values()) == ["car #1", "car #2", "car #9"]


def test_deletions_and_labels_do_not_change_what_the_reader_reads(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, frames)
    with open_log(path) as reader:
        read = list(reader.iter_frames())
    assert [len(f.onboard.cuboids) for f in read] == [3, 1, 0, 2]
    for got, written in zip(read, frames):
        np.testing.assert_array_equal(got.onboard.cuboids.track_ids, written.onboard.cuboids.track_ids)
        np.testing.assert_array_equal(got.onboard.cuboids.labels, written.onboard.cuboids.labels)
        np.testing.assert_allclose(got.annotations.centers_m, written.annotations.centers_m, atol=1e-12)

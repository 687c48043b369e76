"""Detector: loading (checksums, foreign and truncated files), inference on bad input, batching."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("spconv")

from av_pipeline.detect import Detector  # noqa: E402
from av_pipeline.detect.checkpoint import CheckpointError  # noqa: E402
from av_pipeline.errors import ShapeError  # noqa: E402
from tests.av_pipeline.detect_fixtures import TINY, write_tiny_weights  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def detector(weights):
    return Detector.from_pretrained(weights, device="cpu")


def _cloud(rng: np.random.Generator, n: int = 8000) -> np.ndarray:
    xyz = np.column_stack([rng.uniform(-25, 25, n), rng.uniform(-25, 25, n), rng.uniform(-1.5, 3, n)])
    return xyz.astype(np.float32)


def test_detect_returns_ego_cuboids_with_known_classes(detector):
    boxes = detector.detect_points(_cloud(np.random.default_rng(0)))
    assert boxes.frame == "ego"
    assert len(boxes) > 0  # random weights with a 0.5 prior: boxes are decoded
    assert set(boxes.labels) <= set(TINY.classes)
    assert (boxes.scores >= TINY.decode.score_threshold).all() and (np.diff(boxes.scores) <= 0).all()
    assert len(boxes) <= TINY.decode.max_detections
    t = detector.stats.last_timings_ms
    assert set(t) == {"voxelize", "backbone", "head", "decode"} and all(v > 0 for v in t.values())


def test_batch_equals_single_frames(detector):
    """A frame's network outputs do not depend on the other frames of its batch."""
    import torch

    from av_pipeline.detect.targets import voxel_input

    rng = np.random.default_rng(1)
    clouds = [_cloud(rng), _cloud(rng, 5000)]
    inputs = [voxel_input(c, detector.config) for c in clouds]

    def forward(parts):
        features = torch.from_numpy(np.concatenate([v.features for v in parts]))
        coords = np.concatenate([np.column_stack([np.full(len(v.coords_zyx), b, np.int32), v.coords_zyx]) for b, v in enumerate(parts)])
        with torch.inference_mode():
            return detector.model(features, torch.from_numpy(coords), len(parts))

    batched = forward(inputs)
    for b, v in enumerate(inputs):
        single = forward([v])
        for group_b, group_s in zip(batched, single):
            np.testing.assert_allclose(group_b.heatmap[b].numpy(), group_s.heatmap[0].numpy(), atol=1e-4)
            np.testing.assert_allclose(group_b.regression[b].numpy(), group_s.regression[0].numpy(), atol=1e-4)
    # and the batched API returns one result per frame, in order
    out = detector.detect_points_batch(clouds)
    assert len(out) == 2 and all(len(o) > 0 for o in out)


def test_bad_sweeps_give_empty_predictions_and_counts(detector):
    before = detector.stats.empty_frames
    nan_cloud = np.full((100, 3), np.nan, np.float32)
    far = np.full((50, 3), 500.0, np.float32)
    empty = np.zeros((0, 3), np.float32)
    rng = np.random.default_rng(2)
    mixed = _cloud(rng, 3000)
    mixed[::3] = np.nan
    out = detector.detect_points_batch([empty, nan_cloud, far, mixed])
    assert [len(b) for b in out[:3]] == [0, 0, 0]
    assert detector.stats.empty_frames - before == 3
    assert detector.stats.nonfinite_points >= 100 + 1000
    assert detector.stats.out_of_range_points >= 50
    with pytest.raises(ShapeError, match=r"clouds\[0\]: expected \(N, 3\) float points"):
        detector.detect_points(np.zeros((10, 4), np.float32))


def test_missing_corrupt_foreign_and_mismatched_weights_name_the_file(weights, tmp_path):
    with pytest.raises(CheckpointError, match="no such weights file"):
        Detector.from_pretrained(tmp_path / "absent.pt")
    # truncated: the checksum no longer matches
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(weights.read_bytes()[:1000])
    (tmp_path / "truncated.json").write_text(weights.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match=r"truncated\.pt: checksum mismatch"):
        Detector.from_pretrained(truncated)
    # truncated with a matching checksum: torch cannot read it
    meta = json.loads(weights.with_suffix(".json").read_text())
    from av_pipeline.detect.checkpoint import sha256_of

    meta["sha256"] = sha256_of(truncated)
    (tmp_path / "truncated.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a readable torch weights file"):
        Detector.from_pretrained(truncated)
    # a foreign JSON description
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(weights.read_bytes())
    (tmp_path / "foreign.json").write_text(json.dumps({"format": "mmdet3d"}))
    with pytest.raises(CheckpointError, match=r"foreign\.json: not an av-pipeline detector description"):
        Detector.from_pretrained(foreign)
    # weights of another architecture under this config
    other = tmp_path / "other.pt"
    other.write_bytes(weights.read_bytes())
    meta = json.loads(weights.with_suffix(".json").read_text())
    meta["config"]["head"]["channels"] = 24
    (tmp_path / "other.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"other\.pt: tensor .*: expected shape"):
        Detector.from_pretrained(other)
    # description missing
    lonely = tmp_path / "lonely.pt"
    lonely.write_bytes(weights.read_bytes())
    with pytest.raises(CheckpointError, match=r"lonely\.json: the description of lonely\.pt is missing"):
        Detector.from_pretrained(lonely)


def test_cpu_results_do_not_depend_on_threads_or_batches():
    """spconv's CPU kernels race with two torch threads; the detector's own CPU path does not."""
    import numpy as np
    import torch

    from av_pipeline.detect import Detector
    from av_pipeline.readers import open_log
    from av_pipeline.synthetic import bundled_log
    from av_pipeline.detect.points import frame_points_ego

    with open_log(bundled_log().mcap) as reader:
        refs = reader.list_frames()
        clouds = [frame_points_ego(reader.load_frame(refs[i])) for i in range(2)]
    detector = Detector.from_pretrained()
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, again = detector.detect_points(clouds[0]), detector.detect_points(clouds[0])
        batched = detector.detect_points_batch(clouds)[0]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    for other in (again, batched):
        assert len(other) == len(first) > 10
        np.testing.assert_array_equal(other.scores, first.scores)
        np.testing.assert_array_equal(other.centers_m, first.centers_m)

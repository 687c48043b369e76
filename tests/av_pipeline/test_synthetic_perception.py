"""Onboard perception: a plain function of ground truth + rng + config, with every planted
anomaly listed in the answer key and visible in the output exactly where the key says."""

from __future__ import annotations

import numpy as np
import pytest

from av_pipeline.errors import ConfigError
from av_pipeline.synthetic import ANOMALY_KINDS, Anomaly, PerceptionConfig, SimulationConfig, SyntheticDrive, default_cameras
from av_pipeline.synthetic.perception import EGO_DEVIATION_THRESHOLD_M, GHOST_TRACK_ID_BASE, onboard_perception, planted_count


@pytest.fixture(scope="module")
def drive() -> SyntheticDrive:
    """Ground truth and perception only (no frame is rendered here)."""
    return SyntheticDrive(SimulationConfig(frames=60, seed=5, cameras=default_cameras(0.25)))


def _rows(drive: SyntheticDrive, anomaly: Anomaly):
    """(frame index, row in the GT, onboard output) for every frame of an anomaly."""
    for f in anomaly.frames:
        truth = drive.truths[f]
        rows = np.flatnonzero(truth.cuboids.track_ids == anomaly.track_id)
        yield f, (int(rows[0]) if len(rows) else None), drive.onboard[f]


def _in_3d(onboard, track: int) -> np.ndarray:
    return np.flatnonzero(onboard.cuboids.track_ids == track)


def _in_2d(onboard, track: int) -> bool:
    return any(track in boxes.track_ids for boxes in onboard.camera_boxes.values())


def test_every_kind_is_planted(drive) -> None:
    kinds = {a.kind for a in drive.anomalies}
    assert kinds == set(ANOMALY_KINDS)
    causes = {a.details["cause"] for a in drive.anomalies if a.kind == "missed_object"}
    assert causes == {"far", "occluded", "rare_class"}
    for a in drive.anomalies:
        assert 0 <= a.first_frame <= a.last_frame < 60 and a.reason
        assert a.first_timestamp_ns == drive.timestamp_ns(a.first_frame)
    # one anomaly per object and frame
    cells = [(a.track_id, f) for a in drive.anomalies if a.kind != "ego_deviation" for f in a.frames]
    assert len(cells) == len(set(cells))


def test_anomalies_show_in_the_output_where_the_key_says(drive) -> None:
    for a in drive.anomalies:
        for f, row, onboard in _rows(drive, a):
            truth = drive.truths[f]
            if a.kind in ("missed_object", "track_flicker"):
                assert len(_in_3d(onboard, a.track_id)) == 0 and not _in_2d(onboard, a.track_id)
            elif a.kind == "camera_only":
                assert len(_in_3d(onboard, a.track_id)) == 0 and _in_2d(onboard, a.track_id)
            elif a.kind == "lidar_only":
                assert len(_in_3d(onboard, a.track_id)) == 1 and not _in_2d(onboard, a.track_id)
            elif a.kind == "ghost_object":
                assert a.track_id >= GHOST_TRACK_ID_BASE and row is None and len(_in_3d(onboard, a.track_id)) == 1
            elif a.kind == "ego_deviation":
                assert drive.ego_deviation_m[f] > EGO_DEVIATION_THRESHOLD_M
            else:
                j = _in_3d(onboard, a.track_id)[0]
                reported, true = onboard.cuboids, truth.cuboids
                if a.kind == "class_confusion":
                    assert reported.labels[j] == a.details["reported_label"] != true.labels[row]
                elif a.kind == "localization_error":
                    assert np.linalg.norm(reported.centers_m[j, :2] - true.centers_m[row, :2]) > 0.9
                elif a.kind == "size_error":
                    ratio = reported.sizes_m[j] / true.sizes_m[row]
                    assert np.all(np.abs(ratio - a.details["scale"]) < 0.25)
                elif a.kind == "heading_error":
                    error = np.degrees(np.angle(np.exp(1j * (reported.yaws_rad[j] - true.yaws_rad[row]))))
                    assert abs(abs(error) - abs(a.details["yaw_error_deg"])) < 12
        if a.kind == "track_flicker":  # reported just before and after
            for f in (a.first_frame - 1, a.last_frame + 1):
                assert len(_in_3d(drive.onboard[f], a.track_id)) == 1


def test_outside_the_anomalies_the_output_tracks_the_truth(drive) -> None:
    planted = {(a.track_id, f) for a in drive.anomalies for f in a.frames}
    errors, reported = [], 0
    config = drive.config.perception
    for truth, onboard in zip(drive.truths, drive.onboard):
        expected = (truth.range_m <= config.max_range_m) & (truth.lidar_visibility >= config.min_visibility)
        for row in np.flatnonzero(expected):
            track = int(truth.cuboids.track_ids[row])
            if (track, truth.index) in planted:
                continue
            j = _in_3d(onboard, track)
            assert len(j) == 1, f"frame {truth.index}: track {track} should be reported"
            assert onboard.cuboids.labels[j[0]] == truth.cuboids.labels[row]
            errors.append(np.linalg.norm(onboard.cuboids.centers_m[j[0]] - truth.cuboids.centers_m[row]))
            reported += 1
        # nothing is reported that is not in the truth, except planted ghosts
        ghosts = onboard.cuboids.track_ids >= GHOST_TRACK_ID_BASE
        assert set(onboard.cuboids.track_ids[~ghosts]) <= set(truth.cuboids.track_ids)
    assert reported > 1000
    assert 0.03 < np.median(errors) < 0.3  # realistic noise, not zero, not anomalous


def test_a_plain_function_of_truth_rng_and_config(drive) -> None:
    config = drive.config.perception
    a_out, a_key = onboard_perception(drive.truths, config, np.random.default_rng(11))
    b_out, b_key = onboard_perception(drive.truths, config, np.random.default_rng(11))
    c_out, _ = onboard_perception(drive.truths, config, np.random.default_rng(12))
    assert a_key == b_key
    assert all(x.cuboids == y.cuboids for x, y in zip(a_out, b_out))
    assert not all(x.cuboids == y.cuboids for x, y in zip(a_out, c_out))


def test_rates_are_configurable(drive) -> None:
    quiet = PerceptionConfig(rates={kind: 0.0 for kind in ANOMALY_KINDS})
    _, key = onboard_perception(drive.truths, quiet, np.random.default_rng(0))
    assert key == []
    busy = PerceptionConfig(rates={"track_flicker": 10.0})
    _, key = onboard_perception(drive.truths, busy, np.random.default_rng(0))
    assert [a.kind for a in key] == ["track_flicker"] * planted_count(10.0, 60) == ["track_flicker"] * 6
    with pytest.raises(ConfigError, match="unknown anomaly kinds"):
        PerceptionConfig(rates={"teleport": 1.0})


def test_planned_path_deviates_only_around_the_ego_event(drive) -> None:
    events = drive.ego.events
    assert len(events) == 1
    deviating = np.flatnonzero(drive.ego_deviation_m > EGO_DEVIATION_THRESHOLD_M)
    key = [a for a in drive.anomalies if a.kind == "ego_deviation"]
    assert [f for a in key for f in a.frames] == list(deviating)
    event = events[0]
    # the plan looks 3 s ahead, so it disagrees from 3 s before the event to its end
    times = deviating * 0.1
    assert times.min() >= event.start_s - 3.05 and times.max() <= event.start_s + event.duration_s
    calm = np.ones(60, dtype=bool)
    calm[deviating] = False
    assert drive.ego_deviation_m[calm].max() < EGO_DEVIATION_THRESHOLD_M
    assert np.median(drive.ego_deviation_m[calm]) < 0.1


def test_anomaly_dicts_round_trip(drive) -> None:
    for a in drive.anomalies:
        assert Anomaly.from_dict(a.to_dict()) == a

"""Each trigger on a hand-built scene: it fires on the planted problem, names the trigger, the
objects and the numbers in its reason, and stays quiet on the clean scene."""

from __future__ import annotations

import re

import numpy as np
import pytest

from av_pipeline.mining import Campaign, mine_log, registry
from av_pipeline.mining.context import MiningLog
from tests.av_pipeline.mining_fixtures import Scene, SceneObject, sweep_of_objects

CARS = [
    SceneObject(1, "car", (20.0, 3.5), (5.0, 0.0)),
    SceneObject(2, "car", (35.0, -3.5), (-4.0, 0.0)),
    SceneObject(3, "pedestrian", (15.0, 6.0), (0.0, -0.8)),
    SceneObject(4, "cyclist", (25.0, -6.0), (3.0, 0.0)),
]


def fire(name: str, scene: Scene, **params) -> list:
    spec = registry.get(name)
    return spec.function(MiningLog(scene.build(), scene.rig), spec.make_params(params))


def in_frames(first: int, last: int, edit):
    def wrapped(k, rows):
        return edit(k, rows) if first <= k <= last else rows

    return wrapped


@pytest.mark.parametrize("name", ["missed_by_onboard", "ghost", "class_disagreement", "localization_disagreement", "size_disagreement",
                                  "heading_disagreement", "track_flicker", "track_jump", "size_change", "class_flip", "uncertain_shadow"])  # fmt: skip
def test_clean_scene_fires_nothing(name):
    assert fire(name, Scene(CARS)) == []


def test_clean_scene_camera_and_path_fire_nothing():
    scene = Scene(CARS, with_camera_boxes=True, with_path=True, ego_speed_mps=8.0)
    for name in ("camera_without_3d", "lidar_without_camera", "planner_deviation"):
        assert fire(name, scene) == [], name


def test_missed_by_onboard_names_object_range_points_and_duration():
    scene = Scene(CARS, edit_onboard=in_frames(10, 14, lambda k, rows: [r for r in rows if r["track"] != 1]))
    (event,) = fire("missed_by_onboard", scene)
    assert (event.first_frame, event.last_frame) == (10, 14)
    assert event.objects[0].source == "shadow" and event.label == "car"
    assert re.search(
        r"missed_by_onboard: shadow sees a car at \d+ m \(score 0\.90, 200 LiDAR points, \d+% of what it shows unoccluded\) that onboard missed for 5 frames",
        event.reason,
    )
    # the range in the reason is the object's range at the peak frame
    assert f"at {event.objects[0].range_m:.0f} m" in event.reason


def test_missed_by_onboard_needs_lidar_support_and_persistence():
    few_points = [SceneObject(1, "car", (20.0, 3.5), (5.0, 0.0), points=4)]
    assert fire("missed_by_onboard", Scene(few_points, edit_onboard=in_frames(10, 14, lambda k, rows: []))) == []
    assert fire("missed_by_onboard", Scene(CARS, edit_onboard=in_frames(10, 10, lambda k, rows: [r for r in rows if r["track"] != 1]))) == []


def test_ghost_without_points_and_without_shadow_partner():
    def add_ghost(k, rows):
        return rows + [{"track": 99, "label": "car", "center": np.array([18.0, 0.0, 0.8]), "size": np.array([4.5, 1.9, 1.6]), "yaw": 0.0, "score": 0.8, "points": 0}]

    (event,) = fire("ghost", Scene(CARS, edit_onboard=in_frames(5, 8, add_ghost)))
    assert (event.first_frame, event.last_frame, event.objects[0].track_id) == (5, 8, 99)
    assert re.fullmatch(
        r"ghost: onboard reports a car \(track 99\) at 18 m for 4 frames with 0 LiDAR points inside \(a car there gets about \d+\) and no shadow detection",
        event.reason,
    )
    assert event.details["expected_points"] > 0


def test_class_disagreement():
    def relabel(k, rows):
        return [dict(r, label="van") if r["track"] == 2 else r for r in rows]

    (event,) = fire("class_disagreement", Scene(CARS, edit_onboard=in_frames(3, 7, relabel)))
    assert event.reason.startswith("class_disagreement: onboard calls track 2 a van, shadow a car (score 0.90)")
    assert "for 5 frames" in event.reason and {o.source for o in event.objects} == {"onboard", "shadow"}


def test_localization_size_heading():
    shift = in_frames(3, 6, lambda k, rows: [dict(r, center=r["center"] + [0.0, 2.0, 0.0]) if r["track"] == 1 else r for r in rows])
    (event,) = fire("localization_disagreement", Scene(CARS, edit_onboard=shift))
    assert "places its car 2.0 m from the shadow's" in event.reason and event.details["offset_m"] == pytest.approx(2.0)

    grow = in_frames(3, 6, lambda k, rows: [dict(r, size=r["size"] * 1.6) if r["track"] == 2 else r for r in rows])
    (event,) = fire("size_disagreement", Scene(CARS, edit_onboard=grow))
    assert "onboard sizes its car 7.2x3.0x2.6 m, shadow 4.5x1.9x1.6 m" in event.reason
    assert event.details["scale_error"] == pytest.approx(1 - 1 / 1.6**3, abs=1e-3)

    turn = in_frames(3, 6, lambda k, rows: [dict(r, yaw=r["yaw"] + np.pi) if r["track"] == 4 else r for r in rows])
    (event,) = fire("heading_disagreement", Scene(CARS, edit_onboard=turn))
    assert "heads its cyclist 180 degrees away" in event.reason and "track 4" in event.reason


@pytest.mark.parametrize(
    ("name", "edit", "change_words"),
    [
        ("class_disagreement", lambda r: dict(r, label="van"), "class"),
        ("heading_disagreement", lambda r: dict(r, yaw=r["yaw"] + np.pi), "degrees turned"),
        ("localization_disagreement", lambda r: dict(r, center=r["center"] + [0.0, 2.0, 0.0]), "m off its own path"),
        ("size_disagreement", lambda r: dict(r, size=r["size"] * 1.6), "scale error against its own size"),
    ],
)
def test_who_changed_onboard_or_shadow(name, edit, change_words):
    """The same disagreement scores in full when onboard itself changed for those frames, and
    ``steady_factor`` as much when onboard stayed steady and the shadow's box changed."""
    track = 2 if name != "heading_disagreement" else 4
    change = in_frames(6, 9, lambda k, rows: [edit(r) if r["track"] == track else r for r in rows])
    (onboard_changed,) = fire(name, Scene(CARS, edit_onboard=change))
    (shadow_changed,) = fire(name, Scene(CARS, edit_shadow=change))
    assert "onboard itself changed at its edges" in onboard_changed.reason and change_words in onboard_changed.reason
    assert "onboard steady around it" in shadow_changed.reason and "the shadow may be wrong" in shadow_changed.reason
    steady = registry.get(name).defaults().steady_factor
    assert shadow_changed.score == pytest.approx(onboard_changed.score * steady, rel=0.35)
    assert shadow_changed.score < 0.5 * onboard_changed.score
    recorded = "onboard_changed" if name == "class_disagreement" else "onboard_change"
    assert onboard_changed.details[recorded] and not shadow_changed.details[recorded]


def test_disagreement_runs_bridge_short_gaps():
    shift = lambda r: dict(r, center=r["center"] + [0.0, 2.0, 0.0])  # noqa: E731
    broken = lambda k, rows: [shift(r) if r["track"] == 1 and k in (4, 5, 7, 8) else r for r in rows]  # noqa: E731
    (event,) = fire("localization_disagreement", Scene(CARS, edit_onboard=broken))
    assert (event.first_frame, event.last_frame, event.details["frames"]) == (4, 8, 4)
    assert len(fire("localization_disagreement", Scene(CARS, edit_onboard=broken), bridge_frames=0)) == 2


def test_pedestrian_heading_is_not_checked_by_default():
    turn = in_frames(3, 6, lambda k, rows: [dict(r, yaw=r["yaw"] + np.pi) if r["track"] == 3 else r for r in rows])
    assert fire("heading_disagreement", Scene(CARS, edit_onboard=turn)) == []
    assert len(fire("heading_disagreement", Scene(CARS, edit_onboard=turn), classes=["pedestrian"])) == 1


def test_track_flicker_confirmed_by_shadow_points():
    drop = in_frames(12, 13, lambda k, rows: [r for r in rows if r["track"] != 1])
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop))
    assert event.score == pytest.approx(0.9) and event.details["gap_frames"] == 2
    assert re.match(r"track_flicker: onboard car track 1 at \d+ m vanished for 2 frames \(frames 12-13\) and came back; shadow still sees it", event.reason)
    # the shadow also lost it: the object was probably hidden, the event stays but scores low
    hidden = Scene(CARS, edit_onboard=drop, edit_shadow=in_frames(12, 13, lambda k, rows: [r for r in rows if r["track"] != 1]))
    (event,) = fire("track_flicker", hidden)
    assert event.score == pytest.approx(0.1) == registry.get("track_flicker").defaults().unconfirmed_score
    assert "shadow confirms it, as visible as before, in 0 of 2 (it may have been hidden)" in event.reason
    (event,) = fire("track_flicker", hidden, unconfirmed_score=0.25)
    assert event.score == pytest.approx(0.25)


def test_track_flicker_confirmed_relative_to_the_tracks_own_points():
    # a far pedestrian shows 6 points whether onboard reports it or not: too few for the
    # absolute checks, but a 3-frame drop while the shadow detects it as before is a miss
    sparse = [o for o in CARS if o.label != "pedestrian"] + [SceneObject(3, "pedestrian", (15.0, 6.0), (0.0, -0.8), points=6)]
    drop3 = in_frames(12, 14, lambda k, rows: [r for r in rows if r["track"] != 3])
    (event,) = fire("track_flicker", Scene(sparse, edit_onboard=drop3))
    defaults = registry.get("track_flicker").defaults()
    assert event.details["relative_confirmed_frames"] == 3 and event.details["reference_points"] == 6
    assert event.score == pytest.approx(0.9 * defaults.relative_score)
    assert "shadow still detects it with as many LiDAR points as when onboard reported it" in event.reason
    assert "median 6 in the frames around the gap" in event.reason
    # a shorter drop is what the stack's visibility cut-off does to a sparse object
    drop2 = in_frames(12, 13, lambda k, rows: [r for r in rows if r["track"] != 3])
    (event,) = fire("track_flicker", Scene(sparse, edit_onboard=drop2))
    assert event.score == pytest.approx(defaults.unconfirmed_score) and event.details["relative_confirmed_frames"] == 0
    (event,) = fire("track_flicker", Scene(sparse, edit_onboard=drop2), relative_min_gap=2)
    assert event.details["relative_confirmed_frames"] == 2
    # ... unless the LiDAR's line of sight to it was free: then it was in view, however sparse
    (event,) = fire("track_flicker", Scene(sparse, edit_onboard=drop2, sweep_of=sweep_of_objects()))
    assert event.details["relative_confirmed_frames"] == 2 and min(event.details["lidar_visibility"]) >= defaults.relative_min_visibility
    # fewer points than the track had (hidden) or a weak shadow box (gap-filled) do not confirm
    fewer = in_frames(12, 14, lambda k, rows: [dict(r, points=3) if r["track"] == 3 else r for r in rows])
    (event,) = fire("track_flicker", Scene(sparse, edit_onboard=drop3, edit_shadow=fewer))
    assert event.score == pytest.approx(defaults.unconfirmed_score)
    weak = in_frames(12, 14, lambda k, rows: [dict(r, score=0.4) if r["track"] == 3 else r for r in rows])
    (event,) = fire("track_flicker", Scene(sparse, edit_onboard=drop3, edit_shadow=weak))
    assert event.score == pytest.approx(defaults.unconfirmed_score)


def _object_cluster(track: int, points: int, z_top_extra_m: float = 0.0):
    """Clusters: where ``track`` truly is, ``points`` LiDAR points spanning its box (taller by ``z_top_extra_m``)."""

    def clusters(k, rows):
        (row,) = [r for r in rows if r["track"] == track]
        extent = row["size"] + np.array([0.0, 0.0, z_top_extra_m])
        center = row["center"] + np.array([0.0, 0.0, z_top_extra_m / 2])
        return [(center, extent, points)]

    return clusters


def test_track_flicker_confirmed_by_lidar_points_the_shadow_also_missed():
    drop = in_frames(12, 13, lambda k, rows: [r for r in rows if r["track"] != 1])
    lost = in_frames(12, 13, lambda k, rows: [r for r in rows if r["track"] != 1])
    # car 1 shows 200 points around the gap; its points stay where it was heading
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, edit_shadow=lost, clusters_of=_object_cluster(1, 190)))
    assert event.score == pytest.approx(0.9) and event.details["lidar_confirmed_frames"] == 2 and event.details["gap_points"] == [190, 190]
    assert re.search(r"vanished for 2 frames \(frames 12-13\) and came back; its LiDAR points stay \(190, 190 in its path; unoccluded about \d+\)", event.reason)
    # too few points: hidden, as onboard had it
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, edit_shadow=lost, clusters_of=_object_cluster(1, 30)))
    assert event.score == pytest.approx(0.1) and event.details["lidar_confirmed_frames"] == 0
    # far more points than the object ever showed belong to something else
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, edit_shadow=lost, clusters_of=_object_cluster(1, 2000)))
    assert event.score == pytest.approx(0.1)
    # confirmed in 2 of 3 gap frames: at least min_confirmed_share (0.6), scored by the share
    drop3 = in_frames(12, 14, lambda k, rows: [r for r in rows if r["track"] != 1])
    lost3 = in_frames(12, 14, lambda k, rows: [r for r in rows if r["track"] != 1])
    two_of_three = _object_cluster(1, 190)
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop3, edit_shadow=lost3,
                                           clusters_of=lambda k, rows: two_of_three(k, rows) if k != 13 else []))  # fmt: skip
    assert event.score == pytest.approx(0.9 * 2 / 3) and event.reason.endswith("; confirmed in 2 of 3 frames")
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop3, edit_shadow=lost3,
                                           clusters_of=lambda k, rows: two_of_three(k, rows) if k != 13 else []), min_confirmed_share=0.8)  # fmt: skip
    assert event.score == pytest.approx(0.1) and "shadow or its LiDAR points confirm it, as visible as before, in 2 of 3" in event.reason
    # a cluster rising a metre above the car is what hides it (a wall, a sign), not the car
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, edit_shadow=lost, clusters_of=_object_cluster(1, 190, z_top_extra_m=1.0)))
    assert event.score == pytest.approx(0.1) and event.details["gap_points"] == [0, 0]


def test_ghost_next_to_lidar_points_or_with_a_supported_past_is_weak():
    ghost_row = {"track": 99, "label": "car", "center": np.array([18.0, 0.0, 0.8]), "size": np.array([4.5, 1.9, 1.6]), "yaw": 0.0, "score": 0.8, "points": 0}

    def add_ghost(k, rows):
        return rows + [dict(ghost_row)]

    (alone,) = fire("ghost", Scene(CARS, edit_onboard=in_frames(5, 8, add_ghost), clusters_of=lambda k, rows: []))
    assert alone.reason.endswith("and no shadow detection, none unexplained within 0.5 m; the track never had LiDAR support in its 4 frames")
    assert alone.details["never_supported"]
    # a far pedestrian gets few points anyway, but a track that never showed any is still a ghost
    far = dict(ghost_row, label="pedestrian", center=np.array([45.0, 2.0, 0.9]), size=np.array([0.7, 0.7, 1.75]))
    sparse = [o for o in CARS if o.label != "pedestrian"] + [SceneObject(3, "pedestrian", (15.0, 6.0), (0.0, -0.8), points=8)]
    (weak,) = fire("ghost", Scene(sparse, edit_onboard=in_frames(5, 8, lambda k, rows: rows + [dict(far)])))
    (strong,) = fire("ghost", Scene(sparse, edit_onboard=in_frames(5, 8, lambda k, rows: rows + [dict(far)]), clusters_of=lambda k, rows: []))
    assert weak.details["expected_points"] < 2 and weak.score < 0.2
    assert strong.score > weak.score and strong.score >= 0.8 * (0.5 + 0.5 * 0.8) * 0.99
    # points no box explains sit in the box: a real object onboard placed badly, not a ghost
    beside = lambda k, rows: [(np.array([18.3, 0.2, 0.9]), np.array([3.5, 1.6, 1.4]), 300)]  # noqa: E731
    assert fire("ghost", Scene(CARS, edit_onboard=in_frames(5, 8, add_ghost), clusters_of=beside)) == []

    # the track had LiDAR support before: most likely hidden while the tracker carries it
    def coast(k, rows):
        if k < 5:
            return rows + [dict(ghost_row, points=80)]
        return add_ghost(k, rows) if k <= 8 else rows

    (carried,) = fire("ghost", Scene(CARS, edit_onboard=coast))
    assert carried.score == pytest.approx(alone.score * registry.get("ghost").defaults().coasting_factor, rel=1e-6)
    assert "the track had LiDAR support in 5 frames outside it (likely hidden, carried by the tracker)" in carried.reason


def test_track_jump_position_and_heading_in_world_with_moving_ego():
    jump = in_frames(10, 12, lambda k, rows: [dict(r, center=r["center"] + [0.0, 1.8, 0.0]) if r["track"] == 2 else r for r in rows])
    events = fire("track_jump", Scene(CARS, ego_speed_mps=10.0, edit_onboard=jump))
    assert len(events) == 1 and (events[0].first_frame, events[0].last_frame) == (10, 12)
    assert "track_jump: onboard car track 2" in events[0].reason and "m off its own track for 3 frames" in events[0].reason
    flip = in_frames(10, 11, lambda k, rows: [dict(r, yaw=r["yaw"] + np.pi / 2) if r["track"] == 1 else r for r in rows])
    (event,) = fire("track_jump", Scene(CARS, ego_speed_mps=10.0, edit_onboard=flip))
    assert "heading 90 degrees off" in event.reason


def test_size_change_and_class_flip():
    grow = in_frames(10, 13, lambda k, rows: [dict(r, size=r["size"] * [1.0, 1.0, 1.8]) if r["track"] == 4 else r for r in rows])
    (event,) = fire("size_change", Scene(CARS, edit_onboard=grow))
    assert "size_change: onboard cyclist track 4" in event.reason and "1.80x its median for 4 frames" in event.reason
    flip = in_frames(10, 11, lambda k, rows: [dict(r, label="cyclist") if r["track"] == 3 else r for r in rows])
    (event,) = fire("class_flip", Scene(CARS, edit_onboard=flip))
    assert "is a pedestrian in 28 of 30 frames but a cyclist for 2 frames" in event.reason


def _wall_before_car_1(first: int, last: int):
    """A wall (e.g. a passing bus) between the LiDAR and car 1 in frames ``first``-``last``."""
    return lambda k: [(np.array([15.0, 2.0, 1.5]), (0.3, 4.0, 3.0))] if first <= k <= last else []


def test_track_flicker_is_not_confirmed_where_the_lidars_line_of_sight_is_blocked():
    drop = in_frames(12, 13, lambda k, rows: [r for r in rows if r["track"] != 1])
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, sweep_of=sweep_of_objects()))
    assert event.score == pytest.approx(0.9) and event.details["lidar_visibility"] == [1.0, 1.0]
    assert "; 100% of it in the LiDAR's line of sight" in event.reason
    # the shadow still sees car 1, but something stands between it and the LiDAR: dropping it is expected
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, sweep_of=sweep_of_objects(_wall_before_car_1(12, 13))))
    assert event.score == pytest.approx(registry.get("track_flicker").defaults().unconfirmed_score)
    assert max(event.details["lidar_visibility"]) < 0.25 and "hidden in 2 of 2 frames" in event.reason
    # the check is a parameter
    (event,) = fire("track_flicker", Scene(CARS, edit_onboard=drop, sweep_of=sweep_of_objects(_wall_before_car_1(12, 13))), min_lidar_visibility=0.0)
    assert event.score == pytest.approx(0.9)


def test_missed_by_onboard_needs_a_line_of_sight_and_scores_by_it():
    drop = in_frames(10, 14, lambda k, rows: [r for r in rows if r["track"] != 1])
    # the shadow's box holds 20 of the 200 points the car shows elsewhere (a misfit box)
    misfit = in_frames(10, 14, lambda k, rows: [dict(r, points=20) if r["track"] == 1 else r for r in rows])
    (by_points,) = fire("missed_by_onboard", Scene(CARS, edit_onboard=drop, edit_shadow=misfit))
    assert by_points.details["lidar_visibility"] is None and by_points.score < 0.5
    (in_sight,) = fire("missed_by_onboard", Scene(CARS, edit_onboard=drop, edit_shadow=misfit, sweep_of=sweep_of_objects()))
    assert in_sight.details["lidar_visibility"] == 1.0 and in_sight.score == pytest.approx(0.9)
    assert ", 100% in the LiDAR's line of sight) that onboard missed for 5 frames" in in_sight.reason
    # hidden behind a wall: onboard is right not to report it
    assert fire("missed_by_onboard", Scene(CARS, edit_onboard=drop, sweep_of=sweep_of_objects(_wall_before_car_1(10, 14)))) == []


def test_lidar_without_camera_looks_past_lower_objects_in_front():
    from av_pipeline.mining.triggers.camera import camera_visibility
    from av_pipeline.records import CameraBoxes

    # from the camera (1.5 m up) a truck 30 m ahead shows its upper two thirds over a car at 9 m,
    # though the car's 2D box covers two thirds of the truck's; a car behind the truck is hidden
    objects = [SceneObject(1, "car", (9.0, 0.0)), SceneObject(2, "truck", (30.0, 0.0)), SceneObject(3, "car", (45.0, 0.3))]

    def drop_2d(k, boxes):
        keep = ~np.isin(boxes.track_ids, [2, 3]) if 5 <= k <= 8 else np.ones(len(boxes), bool)
        return CameraBoxes("front", boxes.boxes_px[keep], boxes.labels[keep], boxes.scores[keep], boxes.track_ids[keep])

    scene = Scene(objects, with_camera_boxes=True, edit_camera=drop_2d)
    log = MiningLog(scene.build(), scene.rig)
    assert camera_visibility(log, 5, "front", 1) == pytest.approx(2 / 3) and camera_visibility(log, 5, "front", 2) == 0.0
    (event,) = fire("lidar_without_camera", scene)
    assert "onboard truck track 2 at" in event.reason


def test_lidar_without_camera_counts_the_frames_in_sight_within_a_run_without_2d_box():
    from av_pipeline.records import CameraBoxes

    # a truck crossing at 20 m hides truck 2 from the camera in frames 5-9
    objects = [SceneObject(1, "car", (9.0, 0.0)), SceneObject(2, "truck", (30.0, 0.0)), SceneObject(4, "truck", (20.0, -14.0), (0.0, 20.0))]

    def drop_2d(first, last):
        def edit(k, boxes):
            keep = boxes.track_ids != 2 if first <= k <= last else np.ones(len(boxes), bool)
            return CameraBoxes("front", boxes.boxes_px[keep], boxes.labels[keep], boxes.scores[keep], boxes.track_ids[keep])

        return edit

    (event,) = fire("lidar_without_camera", Scene(objects, with_camera_boxes=True, edit_camera=drop_2d(3, 10)))
    assert (event.first_frame, event.last_frame) == (3, 10) and event.details["frames_in_sight"] == 3
    assert "has no 2D box for 8 frames (in its line of sight with LiDAR support in 3 of them)" in event.reason
    # no 2D box only while it is hidden: expected
    assert fire("lidar_without_camera", Scene(objects, with_camera_boxes=True, edit_camera=drop_2d(5, 9))) == []


def test_lidar_without_camera_keeps_a_run_through_frames_without_lidar_support():
    from av_pipeline.records import CameraBoxes

    def drop_2d(k, boxes):
        keep = boxes.track_ids != 2 if 5 <= k <= 8 else np.ones(len(boxes), bool)
        return CameraBoxes("front", boxes.boxes_px[keep], boxes.labels[keep], boxes.scores[keep], boxes.track_ids[keep])

    # car 2's LiDAR returns drop out in frames 6 and 7 (a dark car): those frames are no
    # evidence, but they do not split frames 5 and 8 into two single-frame runs
    dropout = in_frames(6, 7, lambda k, rows: [dict(r, points=0) if r["track"] == 2 else r for r in rows])
    (event,) = fire("lidar_without_camera", Scene(CARS, with_camera_boxes=True, edit_camera=drop_2d, edit_onboard=dropout))
    assert (event.first_frame, event.last_frame) == (5, 8) and event.details["frames_in_sight"] == 2
    assert "has no 2D box for 4 frames (in its line of sight with LiDAR support in 2 of them)" in event.reason


def test_camera_without_3d_and_lidar_without_camera():
    from av_pipeline.records import CameraBoxes

    def drop_3d(k, rows):
        return [r for r in rows if r["track"] != 1] if 5 <= k <= 8 else rows

    scene = Scene(CARS, with_camera_boxes=True)
    # camera_without_3d: the 2D boxes come from the unedited onboard set, then the 3D box goes
    truth_scene = Scene(CARS, with_camera_boxes=True)
    frames = truth_scene.build()
    edited = Scene(CARS, with_camera_boxes=False, edit_onboard=drop_3d).build()
    from dataclasses import replace

    mixed = [replace(e, onboard=replace(e.onboard, camera_boxes=dict(f.onboard.camera_boxes))) for f, e in zip(frames, edited)]
    spec = registry.get("camera_without_3d")
    (event,) = spec.function(MiningLog(mixed, scene.rig), spec.defaults())
    assert event.reason.startswith("camera_without_3d: camera front reports a car (track 1, score 0.90,")
    assert "with no 3D cuboid (best IoU 0.00) for 4 frames" in event.reason

    def drop_2d(k, boxes):
        keep = boxes.track_ids != 2 if 5 <= k <= 8 else np.ones(len(boxes), bool)
        return CameraBoxes("front", boxes.boxes_px[keep], boxes.labels[keep], boxes.scores[keep], boxes.track_ids[keep])

    (event,) = fire("lidar_without_camera", Scene(CARS, with_camera_boxes=True, edit_camera=drop_2d))
    assert "lidar_without_camera: onboard car track 2 at" in event.reason
    assert re.search(r"\(200 LiDAR points, \d+% of what such an object shows there\) is in view of camera front but has no 2D box for 4 frames", event.reason)


def test_planner_deviation_tolerance_grows_with_horizon():
    swerve = lambda k, poses: poses + np.column_stack([np.zeros(len(poses)), 0.5 * poses[:, 0] / 8.0 * (8 <= k <= 10), np.zeros(len(poses))])  # noqa: E731
    events = fire("planner_deviation", Scene(CARS, ego_speed_mps=8.0, with_path=True, edit_path=swerve))
    assert len(events) == 1 and (events[0].first_frame, events[0].last_frame) == (8, 10)
    assert re.match(r"planner_deviation: the driven path leaves the planned path by 1\.\d\d m 2\.\d s ahead \(tolerance 0\.\d\d m\) for 3 frames", events[0].reason)


def test_uncertain_shadow():
    unsure = lambda k, rows: [dict(r, score=0.4) if r["track"] == 2 else r for r in rows]  # noqa: E731
    (event,) = fire("uncertain_shadow", Scene(CARS, edit_shadow=unsure))
    assert "uncertain_shadow: shadow car at" in event.reason and "scored 0.40-0.40 for 30 frames" in event.reason
    assert event.score == pytest.approx(1.0 - 0.5 * 0.025 / 0.125, abs=1e-6)  # 0.40 is 0.025 from the middle of 0.25-0.50


def test_logs_without_onboard_or_path_mine_what_they_can_and_say_what_they_skipped():
    campaign = Campaign.from_dict({"name": "all", "triggers": {name: None for name in registry.names()}})
    result = mine_log(Scene(CARS, with_onboard=False).build(), campaign, None)
    assert result.skipped["missed_by_onboard"] == "the log has no onboard"
    assert result.skipped["planner_deviation"] == "the log has no planned_path"
    assert "uncertain_shadow" not in result.skipped  # needs only the shadow model
    result = mine_log(Scene(CARS).build(), campaign, None)
    assert result.skipped["planner_deviation"] == "the log has no planned_path"
    assert result.skipped["camera_without_3d"] == "the log has no camera_boxes, rig"
    assert "missed_by_onboard" not in result.skipped and "track_flicker" not in result.skipped


def test_range_exponent_is_fitted_per_log_and_scales_expected_points():
    movers = [SceneObject(i + 1, label, (x, y), (12.0, 0.0)) for i, (label, x, y) in enumerate(
        [("car", 8.0, 3.0), ("car", 15.0, -3.0), ("car", 25.0, 6.0), ("pedestrian", 9.0, 8.0), ("pedestrian", 20.0, -8.0)])]  # fmt: skip
    scale = {"car": 3e5, "pedestrian": 4e4}  # a class-dependent size, one falloff

    def lidar(k, rows):
        return [dict(r, points=max(1, round(scale[r["label"]] * np.hypot(*r["center"][:2]) ** -3))) for r in rows]

    log = MiningLog(Scene(movers, edit_onboard=lidar, edit_shadow=lidar).build())
    assert log.range_exponent == pytest.approx(3.0, abs=0.1)
    # a level measured at 10 m predicts what the object shows at 40 m
    assert log.points_at(log.level(300.0, 10.0), 40.0) == pytest.approx(300.0 / 64, rel=0.05)
    # too few boxes, or all at one range: an ideal scanner's 2
    assert MiningLog(Scene(movers[:1], frames=5, edit_onboard=lidar, edit_shadow=lidar).build()).range_exponent == 2.0
    assert MiningLog(Scene(CARS).build()).range_exponent == 2.0

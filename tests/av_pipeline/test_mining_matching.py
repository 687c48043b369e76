"""Shadow/onboard matching: optimal within class groups, gated, with nuScenes-style errors checked
against nuscenes-devkit's own functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pyquaternion import Quaternion

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.geometry import bev_iou, cuboids_to_bev
from av_pipeline.mining import MatchConfig, match_frame

LABELS = np.array(["car", "van", "truck", "pedestrian", "cyclist"])


def random_boxes(rng, n, spread=12.0):
    labels = rng.choice(LABELS, n)
    sizes = np.where(np.isin(labels, ["pedestrian", "cyclist"])[:, None], [0.8, 0.7, 1.7], [4.5, 1.9, 1.6]) * rng.uniform(0.7, 1.4, (n, 3))
    return Cuboids.from_arrays("ego", np.column_stack([rng.uniform(-spread, spread, (n, 2)), rng.uniform(0, 2, n)]), sizes, rng.uniform(-np.pi, np.pi, n), labels)


def brute_force(shadow, onboard, config):
    """Every assignment of the tiny sets: the lowest total cost, each unmatched box costing ``unmatched_cost``."""
    group = {"car": "vehicle", "van": "vehicle", "truck": "vehicle", "pedestrian": "vru", "cyclist": "vru"}
    iou = bev_iou(cuboids_to_bev(shadow), cuboids_to_bev(onboard))
    best = None
    for perm in itertools.permutations(range(len(onboard)) if len(onboard) >= len(shadow) else range(len(shadow))):
        pairs = list(zip(range(len(shadow)), perm)) if len(onboard) >= len(shadow) else list(zip(perm, range(len(onboard))))
        valid = []
        for i, j in pairs:
            gi, gj = group[shadow.labels[i]], group[onboard.labels[j]]
            d = np.hypot(*(shadow.centers_m[i, :2] - onboard.centers_m[j, :2]))
            if gi == gj and d <= config.gate(gi):
                valid.append((i, j, d / config.gate(gi) + 1 - iou[i, j]))
        # any subset of the valid pairs of this permutation may be kept
        for keep in itertools.product([False, True], repeat=len(valid)):
            chosen = [v for v, k in zip(valid, keep) if k]
            total = sum(v[2] for v in chosen) + config.unmatched_cost * (len(shadow) + len(onboard) - 2 * len(chosen))
            if best is None or total < best[0] - 1e-12:
                best = (total, sorted((i, j) for i, j, _ in chosen))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_assignment_is_optimal_on_small_random_sets(seed):
    rng = np.random.default_rng(seed)
    shadow, onboard = random_boxes(rng, int(rng.integers(0, 5))), random_boxes(rng, int(rng.integers(0, 5)))
    config = MatchConfig()
    m = match_frame(shadow, onboard, config)
    best_total, expected = brute_force(shadow, onboard, config)
    iou = bev_iou(cuboids_to_bev(shadow), cuboids_to_bev(onboard))
    gate = {"car": 4.0, "van": 4.0, "truck": 4.0, "pedestrian": 3.0, "cyclist": 3.0}
    total = sum(m.center_distance_m[k] / gate[shadow.labels[i]] + 1 - iou[i, j] for k, (i, j) in enumerate(zip(m.shadow_index, m.onboard_index)))
    total += config.unmatched_cost * (len(shadow) + len(onboard) - 2 * len(m))
    assert total == pytest.approx(best_total, abs=1e-9)
    assert len(m) == len(expected)
    assert sorted(set(range(len(shadow))) - set(m.shadow_index.tolist())) == m.unmatched_shadow.tolist()
    assert sorted(set(range(len(onboard))) - set(m.onboard_index.tolist())) == m.unmatched_onboard.tolist()


def test_groups_gate_and_flip():
    shadow = Cuboids.from_arrays("ego", [[10, 0, 1], [20, 5, 1], [8, -3, 1]], [[4.5, 1.9, 1.6], [0.7, 0.7, 1.7], [4.5, 1.9, 1.6]], [0, 0, 0], ["car", "pedestrian", "car"])
    onboard = Cuboids.from_arrays("ego", [[10.3, 0, 1], [20.2, 5, 1], [8, 2, 1]], [[4.5, 1.9, 1.6], [0.7, 0.7, 1.7], [4.5, 1.9, 1.6]], [0, 0, 0], ["truck", "car", "car"])
    m = match_frame(shadow, onboard)
    # car-truck match (same group, a flip); pedestrian-car never; the third pair is 5 m apart: beyond the 4 m gate
    assert list(zip(m.shadow_index.tolist(), m.onboard_index.tolist())) == [(0, 0)]
    assert m.class_flip.tolist() == [True]
    assert m.unmatched_shadow.tolist() == [1, 2] and m.unmatched_onboard.tolist() == [1, 2]
    assert len(match_frame(shadow, onboard, MatchConfig(gate_m={"vehicle": 6.0}))) == 2
    with pytest.raises(ValueError, match="shadow boxes are in 'ego', onboard boxes in 'world'"):
        match_frame(shadow, Cuboids.empty("world"))


def test_pair_errors_equal_nuscenes_devkit():
    from nuscenes.eval.common.utils import scale_iou, yaw_diff
    from nuscenes.eval.detection.data_classes import DetectionBox

    rng = np.random.default_rng(7)
    shadow, onboard = random_boxes(rng, 60, spread=1.0), random_boxes(rng, 60, spread=1.0)
    onboard = Cuboids.from_arrays("ego", shadow.centers_m + rng.normal(0, 0.4, (60, 3)), onboard.sizes_m, onboard.yaws_rad, shadow.labels)
    m = match_frame(shadow, onboard, MatchConfig(gate_m={"vehicle": 50.0, "vru": 50.0}))
    assert len(m) == 60

    def nus(boxes, i):
        l, w, h = boxes.sizes_m[i]
        return DetectionBox(translation=tuple(boxes.centers_m[i]), size=(w, l, h), rotation=tuple(Quaternion(axis=[0, 0, 1], angle=boxes.yaws_rad[i]).elements), detection_name="car")

    for k, (i, j) in enumerate(zip(m.shadow_index, m.onboard_index)):
        a, b = nus(onboard, j), nus(shadow, i)
        assert m.scale_error[k] == pytest.approx(1 - scale_iou(a, b), abs=1e-9)
        assert m.orientation_error_rad[k] == pytest.approx(yaw_diff(a, b), abs=1e-9)
        assert m.center_distance_m[k] == pytest.approx(np.hypot(*(shadow.centers_m[i, :2] - onboard.centers_m[j, :2])), abs=1e-12)

"""Per-frame matching of shadow cuboids to onboard cuboids, with nuScenes-style pair errors.

Boxes are matched within a class group (vehicle: car/van/truck; vulnerable road users:
pedestrian/cyclist; any other label is its own group), so a car reported as a van is a
matched pair with a class flip, not a miss plus a ghost. The assignment is optimal
(:func:`scipy.optimize.linear_sum_assignment`) on the cost

    ``centre_distance / gate + (1 - BEV IoU)``

over pairs whose BEV centre distance is within the group's gate, with a cost of 1 for each
box left unmatched; the rotated BEV IoU comes from the shared kernels
(:mod:`av_pipeline.detect.geometry`).

Per pair (as the nuScenes detection metrics define them): translation error (BEV centre
distance, metres), scale error ``1 - IoU`` of the two boxes aligned on centre and heading,
orientation error (smallest absolute yaw difference, ``[0, pi]``), and a class flip flag.

>>> import numpy as np
>>> from av_pipeline.boxes import Cuboids
>>> shadow = Cuboids.from_arrays("ego", [[10, 0, 1], [30, 5, 1]], [[4.5, 1.9, 1.6]] * 2, [0, 0], ["car", "car"])
>>> onboard = Cuboids.from_arrays("ego", [[10.5, 0, 1]], [[4.5, 1.9, 1.6]], [np.pi], ["van"])
>>> m = match_frame(shadow, onboard)
>>> m.shadow_index.tolist(), m.onboard_index.tolist(), m.unmatched_shadow.tolist()
([0], [0], [1])
>>> round(float(m.center_distance_m[0]), 3), round(float(m.orientation_error_rad[0]), 3), bool(m.class_flip[0])
(0.5, 3.142, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.geometry import bev_iou, cuboids_to_bev

#: Class groups within which boxes may match (a flip inside a group is a class disagreement).
CLASS_GROUPS: Mapping[str, str] = {"car": "vehicle", "van": "vehicle", "truck": "vehicle", "pedestrian": "vru", "cyclist": "vru"}


def class_group(label: str) -> str:
    """The matching group of a class (unknown labels form their own group)."""
    return CLASS_GROUPS.get(str(label), str(label))


@dataclass(frozen=True)
class MatchConfig:
    """Gates of the assignment.

    Attributes:
        gate_m: largest BEV centre distance of a pair, per class group (metres); groups not
            listed use ``default_gate_m``.
        default_gate_m: gate for other groups.
        unmatched_cost: cost of leaving a box unmatched: a pair is made only when its cost is
            below the two boxes' unmatched costs together, so one good pair is never broken
            up to make two poor ones.
    """

    gate_m: Mapping[str, float] = field(default_factory=lambda: {"vehicle": 4.0, "vru": 3.0})
    default_gate_m: float = 3.0
    unmatched_cost: float = 1.0

    def gate(self, group: str) -> float:
        """Gate of ``group`` in metres."""
        return float(self.gate_m.get(group, self.default_gate_m))


@dataclass(frozen=True)
class FrameMatch:
    """Matches of one frame (``M`` pairs).

    Attributes:
        shadow_index, onboard_index: ``(M,)`` int64 rows of the matched boxes.
        center_distance_m: ``(M,)`` BEV centre distance.
        bev_iou: ``(M,)`` rotated BEV IoU.
        scale_error: ``(M,)`` ``1 - IoU`` of the boxes aligned on centre and heading.
        orientation_error_rad: ``(M,)`` smallest absolute heading difference in ``[0, pi]``.
        class_flip: ``(M,)`` bool, the labels differ.
        unmatched_shadow: ``(S,)`` int64 shadow rows without a partner.
        unmatched_onboard: ``(O,)`` int64 onboard rows without a partner.
    """

    shadow_index: np.ndarray
    onboard_index: np.ndarray
    center_distance_m: np.ndarray
    bev_iou: np.ndarray
    scale_error: np.ndarray
    orientation_error_rad: np.ndarray
    class_flip: np.ndarray
    unmatched_shadow: np.ndarray
    unmatched_onboard: np.ndarray

    def __post_init__(self) -> None:
        # lookups the triggers make per box and frame
        object.__setattr__(self, "_pair_of_shadow", {int(r): k for k, r in enumerate(self.shadow_index)})
        object.__setattr__(self, "_pair_of_onboard", {int(r): k for k, r in enumerate(self.onboard_index)})

    def __len__(self) -> int:
        return len(self.shadow_index)

    def partner_of_shadow(self, row: int) -> int:
        """The onboard row matched to shadow ``row``, or -1."""
        k = self._pair_of_shadow.get(int(row), -1)
        return int(self.onboard_index[k]) if k >= 0 else -1

    def partner_of_onboard(self, row: int) -> int:
        """The shadow row matched to onboard ``row``, or -1."""
        k = self._pair_of_onboard.get(int(row), -1)
        return int(self.shadow_index[k]) if k >= 0 else -1

    def pair_of_onboard(self, row: int) -> int:
        """Index into the pair arrays of onboard ``row``, or -1."""
        return self._pair_of_onboard.get(int(row), -1)

    def shadow_is_matched(self, row: int) -> bool:
        """Whether shadow ``row`` has an onboard partner."""
        return int(row) in self._pair_of_shadow

    def onboard_is_matched(self, row: int) -> bool:
        """Whether onboard ``row`` has a shadow partner."""
        return int(row) in self._pair_of_onboard


def aligned_scale_error(sizes_a: np.ndarray, sizes_b: np.ndarray) -> np.ndarray:
    """``1 - IoU`` of boxes with sizes ``(M, 3)`` and ``(M, 3)`` placed on the same centre and heading."""
    a, b = np.asarray(sizes_a, dtype=np.float64), np.asarray(sizes_b, dtype=np.float64)
    inter = np.prod(np.minimum(a, b), axis=1)
    union = np.prod(a, axis=1) + np.prod(b, axis=1) - inter
    return 1.0 - inter / np.maximum(union, 1e-12)


def yaw_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest absolute difference of headings, in ``[0, pi]``."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) % (2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def match_frame(shadow: Cuboids, onboard: Cuboids, config: MatchConfig | None = None) -> FrameMatch:
    """Match shadow to onboard cuboids of one frame (both in the same frame, e.g. ``ego``).

    Args:
        shadow: ``S`` shadow boxes.
        onboard: ``O`` onboard boxes.
        config: gates (defaults: 4 m vehicles, 3 m vulnerable road users).

    Returns:
        :class:`FrameMatch`.

    Raises:
        ValueError: the two sets live in different frames.
    """
    config = config or MatchConfig()
    if shadow.frame != onboard.frame:
        raise ValueError(f"match_frame: shadow boxes are in '{shadow.frame}', onboard boxes in '{onboard.frame}'")
    groups_s = np.array([class_group(v) for v in shadow.labels], dtype=object)
    groups_o = np.array([class_group(v) for v in onboard.labels], dtype=object)
    pairs: list[tuple[int, int]] = []
    pair_iou: dict[tuple[int, int], float] = {}
    bev_s, bev_o = cuboids_to_bev(shadow), cuboids_to_bev(onboard)
    for group in sorted(set(groups_s) & set(groups_o)):
        rows_s, rows_o = np.flatnonzero(groups_s == group), np.flatnonzero(groups_o == group)
        gate = config.gate(group)
        dist = np.hypot(
            shadow.centers_m[rows_s, None, 0] - onboard.centers_m[None, rows_o, 0],
            shadow.centers_m[rows_s, None, 1] - onboard.centers_m[None, rows_o, 1],
        )
        feasible = dist <= gate
        if not feasible.any():
            continue
        iou = bev_iou(bev_s[rows_s], bev_o[rows_o])
        n_s, n_o = len(rows_s), len(rows_o)
        # square problem with a "stay unmatched" option for every box
        big = 1e6
        cost = np.full((n_s + n_o, n_o + n_s), big)
        cost[:n_s, :n_o] = np.where(feasible, dist / gate + (1.0 - iou), big)
        cost[np.arange(n_s), n_o + np.arange(n_s)] = config.unmatched_cost
        cost[n_s + np.arange(n_o), np.arange(n_o)] = config.unmatched_cost
        cost[n_s:, n_o:] = 0.0
        r, c = linear_sum_assignment(cost)
        for i, j in zip(r, c):
            if i < n_s and j < n_o and feasible[i, j]:
                pairs.append((int(rows_s[i]), int(rows_o[j])))
                pair_iou[pairs[-1]] = float(iou[i, j])
    pairs.sort()
    s_idx = np.array([p[0] for p in pairs], dtype=np.int64)
    o_idx = np.array([p[1] for p in pairs], dtype=np.int64)
    if len(pairs):
        d = np.hypot(*(shadow.centers_m[s_idx, :2] - onboard.centers_m[o_idx, :2]).T)
        iou_pairs = np.array([pair_iou[p] for p in pairs])
        scale = aligned_scale_error(shadow.sizes_m[s_idx], onboard.sizes_m[o_idx])
        orient = yaw_difference(shadow.yaws_rad[s_idx], onboard.yaws_rad[o_idx])
        flip = shadow.labels[s_idx] != onboard.labels[o_idx]
    else:
        d = iou_pairs = scale = orient = np.zeros(0)
        flip = np.zeros(0, dtype=bool)
    return FrameMatch(
        shadow_index=s_idx,
        onboard_index=o_idx,
        center_distance_m=d,
        bev_iou=iou_pairs,
        scale_error=scale,
        orientation_error_rad=orient,
        class_flip=np.asarray(flip, dtype=bool),
        unmatched_shadow=np.setdiff1d(np.arange(len(shadow)), s_idx).astype(np.int64),
        unmatched_onboard=np.setdiff1d(np.arange(len(onboard)), o_idx).astype(np.int64),
    )


__all__ = ["CLASS_GROUPS", "FrameMatch", "MatchConfig", "aligned_scale_error", "class_group", "match_frame", "yaw_difference"]

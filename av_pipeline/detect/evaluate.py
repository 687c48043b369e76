"""Evaluation of 3D detections: KITTI-style AP (R40), nuScenes-style centre-distance AP, and
pre-label quality as an annotation team counts it.

Inputs are pairs ``(ground truth, predictions)`` of :class:`Cuboids` per frame, both in the
same frame (``ego``). Distances for range bins are BEV distances of box centres from the
frame's origin.

Which ground truth counts (:class:`EvalConfig`): boxes of an evaluated class with at least
``min_points`` LiDAR points (``num_lidar_points``; boxes without counts always count) inside
the range bin. The other ground-truth boxes are *ignored*: a prediction that matches one is
neither a true nor a false positive (KITTI's DontCare semantics); a prediction outside the
bin that matches nothing is ignored too.

- **KITTI AP (R40)**: predictions in descending score, each matched to the unmatched counted
  ground truth of its class with the highest IoU (3D or BEV) if that IoU reaches the class
  threshold; AP is the mean interpolated precision at recalls 1/40, 2/40, ..., 1.
- **nuScenes AP**: the same greedy matching on BEV centre distance below 0.5, 1, 2 or 4 m,
  precision sampled at 101 recalls, AP over recalls above 10% with precision above 10%
  (nuscenes-devkit's ``accumulate`` and ``calc_ap``; the tests compare to it).
- **Pre-label quality**: per frame, one-to-one assignment (Hungarian, on BEV centre distance
  up to ``prelabel_gate_m``, any class) of pre-labels scoring at least
  ``prelabel_score_threshold`` to counted ground truth. A ground-truth box *needs no
  correction* when its pre-label has 3D IoU >= its class threshold and the right class;
  the others get the mean distance of their 8 corners to the pre-label's; *missed* boxes
  have no pre-label; pre-labels matching no box (counted or ignored) are *to delete*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.geometry import cuboid_bev_iou, cuboid_iou_3d

#: KITTI IoU thresholds per class (0.7 for vehicles, 0.5 for vulnerable road users).
IOU_THRESHOLDS: dict[str, float] = {"car": 0.7, "van": 0.7, "truck": 0.7, "pedestrian": 0.5, "cyclist": 0.5}
#: nuScenes centre-distance thresholds (m).
DISTANCE_THRESHOLDS_M: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: Range bins (m), lower bound included.
RANGE_BINS_M: tuple[tuple[float, float], ...] = ((0.0, 20.0), (20.0, 40.0), (40.0, 70.0))


@dataclass(frozen=True)
class EvalConfig:
    """What is evaluated and how.

    Attributes:
        classes: evaluated classes.
        iou_thresholds: class -> IoU threshold for KITTI AP and "no correction needed".
        min_points: ground truth with fewer LiDAR points is ignored.
        range_bins_m: range bins; the whole range is ``[0, max upper bound)``.
        prelabel_score_threshold: pre-labels below this score are not shown to annotators.
        prelabel_gate_m: largest centre distance of a pre-label to the box it pre-labels.
    """

    classes: tuple[str, ...] = ("car", "van", "truck", "pedestrian", "cyclist")
    iou_thresholds: Mapping[str, float] = field(default_factory=lambda: dict(IOU_THRESHOLDS))
    min_points: int = 5
    range_bins_m: tuple[tuple[float, float], ...] = RANGE_BINS_M
    prelabel_score_threshold: float = 0.3
    prelabel_gate_m: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "iou_thresholds", dict(self.iou_thresholds))

    @property
    def all_range_m(self) -> tuple[float, float]:
        """The whole evaluated range."""
        return (0.0, max(hi for _, hi in self.range_bins_m))


def _ranges(boxes: Cuboids) -> np.ndarray:
    return np.hypot(boxes.centers_m[:, 0], boxes.centers_m[:, 1])


def _counted(gt: Cuboids, cls: str | None, rng: tuple[float, float], min_points: int) -> np.ndarray:
    r = _ranges(gt)
    mask = (r >= rng[0]) & (r < rng[1])
    if cls is not None:
        mask &= gt.labels == cls
    if gt.num_lidar_points is not None:
        mask &= gt.num_lidar_points >= min_points
    return mask


def match_frame(
    scores: np.ndarray, similarity: np.ndarray, threshold: float, counted: np.ndarray, pred_in_bin: np.ndarray, higher_is_better: bool
) -> np.ndarray:
    """Greedy matching of one frame's predictions of one class.

    Args:
        scores: ``(P,)`` prediction scores.
        similarity: ``(G, P)`` IoU (``higher_is_better``) or distance to each ground truth.
        threshold: IoU reached (``>=``) or distance undercut (``<``) for a match.
        counted: ``(G,)`` which ground truth counts (the rest is ignored).
        pred_in_bin: ``(P,)`` predictions inside the evaluated range.

    Returns:
        ``(P,)`` int8: 1 true positive, 0 false positive, -1 ignored.
    """
    outcome = np.full(len(scores), -1, np.int8)
    taken = np.zeros(similarity.shape[0], bool)
    # nuscenes-devkit's order: descending score, ties by descending index
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i), reverse=True)
    for p in order:
        column = similarity[:, p]
        valid = counted & ~taken
        if valid.any():
            best = np.argmax(np.where(valid, column, -np.inf)) if higher_is_better else np.argmin(np.where(valid, column, np.inf))
            hit = column[best] >= threshold if higher_is_better else column[best] < threshold
            if hit:
                taken[best] = True
                outcome[p] = 1
                continue
        ignored = ~counted
        near_ignored = ignored.any() and ((column[ignored] >= threshold).any() if higher_is_better else (column[ignored] < threshold).any())
        outcome[p] = -1 if near_ignored or not pred_in_bin[p] else 0
    return outcome


def _precision_recall(scores: np.ndarray, outcome: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    keep = outcome >= 0
    scores, tp_flags = scores[keep], outcome[keep].astype(float)
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i), reverse=True)
    tp = np.cumsum(tp_flags[order])
    fp = np.cumsum(1.0 - tp_flags[order])
    if num_gt == 0 or len(tp) == 0:
        return np.zeros(0), np.zeros(0)
    return tp / (tp + fp), tp / num_gt


def ap_r40(precision: np.ndarray, recall: np.ndarray) -> float:
    """KITTI's AP with 40 recall points: mean of the interpolated precision
    ``max(precision[recall >= r])`` at ``r = 1/40 ... 1`` (0 where recall never reaches r)."""
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    total = 0.0
    for r in np.linspace(1 / 40, 1.0, 40):
        idx = np.searchsorted(recall, r - 1e-12, side="left")
        total += envelope[idx] if idx < len(envelope) else 0.0
    return total / 40


def nuscenes_ap(precision: np.ndarray, recall: np.ndarray, min_recall: float = 0.1, min_precision: float = 0.1) -> float:
    """nuScenes AP: precision interpolated at 101 recalls (0 beyond the last recall), the
    part above ``min_recall`` and ``min_precision``, normalised."""
    if len(precision) == 0 or recall[-1] <= 0:
        return 0.0
    sampled = np.interp(np.linspace(0, 1, 101), recall, precision, right=0)
    sampled = sampled[round(100 * min_recall) + 1 :] - min_precision
    sampled[sampled < 0] = 0
    return float(np.mean(sampled)) / (1.0 - min_precision)


@dataclass
class _Accumulator:
    scores: list[np.ndarray] = field(default_factory=list)
    outcomes: list[np.ndarray] = field(default_factory=list)
    num_gt: int = 0

    def add(self, scores: np.ndarray, outcome: np.ndarray, num_gt: int) -> None:
        self.scores.append(scores)
        self.outcomes.append(outcome)
        self.num_gt += num_gt

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.scores:
            return np.zeros(0), np.zeros(0)
        return _precision_recall(np.concatenate(self.scores), np.concatenate(self.outcomes), self.num_gt)


def _bev_distance(gt: Cuboids, pred: Cuboids) -> np.ndarray:
    return np.linalg.norm(gt.centers_m[:, None, :2] - pred.centers_m[None, :, :2], axis=2)


def _corner_error(gt: Cuboids, pred: Cuboids) -> np.ndarray:
    return np.linalg.norm(gt.corners_m() - pred.corners_m(), axis=2).mean(axis=1)


@dataclass
class PrelabelQuality:
    """Counts of pre-label quality for one class and range bin.

    Attributes:
        num_gt: counted ground-truth boxes.
        no_correction: boxes whose pre-label has the right class and IoU >= threshold.
        corrected: boxes with a pre-label that needs correction.
        corner_error_sum_m: sum over ``corrected`` of the mean corner distance.
        missed: boxes with no pre-label.
        to_delete: pre-labels (of this class, in this bin) matching no box.
        num_prelabels: pre-labels of this class in this bin.
    """

    num_gt: int = 0
    no_correction: int = 0
    corrected: int = 0
    corner_error_sum_m: float = 0.0
    missed: int = 0
    to_delete: int = 0
    num_prelabels: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Counts and the derived shares."""
        return {
            "num_gt": self.num_gt,
            "no_correction_share": self.no_correction / self.num_gt if self.num_gt else None,
            "mean_corner_error_m": self.corner_error_sum_m / self.corrected if self.corrected else None,
            "missed_share": self.missed / self.num_gt if self.num_gt else None,
            "to_delete_share": self.to_delete / self.num_prelabels if self.num_prelabels else None,
            "no_correction": self.no_correction,
            "corrected": self.corrected,
            "missed": self.missed,
            "to_delete": self.to_delete,
            "num_prelabels": self.num_prelabels,
        }


@dataclass
class EvalReport:
    """Results of :func:`evaluate`; bins are named ``"0-20"``, ``"20-40"``, ``"40-70"`` and ``"all"``.

    Attributes:
        kitti: ``{"3d"|"bev": {class: {bin: AP}}}``.
        nuscenes: ``{class: {bin: {"0.5": AP, ..., "mean": AP}}}``.
        prelabels: ``{class: {bin: PrelabelQuality}}``.
        num_gt: ``{class: {bin: counted ground truth}}``.
        frames: frames evaluated.
        config: the :class:`EvalConfig`.
    """

    kitti: dict[str, dict[str, dict[str, float]]]
    nuscenes: dict[str, dict[str, dict[str, float]]]
    prelabels: dict[str, dict[str, PrelabelQuality]]
    num_gt: dict[str, dict[str, int]]
    frames: int
    config: EvalConfig

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe results."""
        return {
            "frames": self.frames,
            "min_points": self.config.min_points,
            "kitti_ap_r40": self.kitti,
            "nuscenes_ap": self.nuscenes,
            "prelabels": {c: {b: q.to_dict() for b, q in bins.items()} for c, bins in self.prelabels.items()},
            "num_gt": self.num_gt,
        }

    def markdown(self) -> str:
        """Tables for docs and terminals."""
        bins = _bin_names(self.config)
        lines = ["| class | metric | " + " | ".join(bins) + " |", "|---|---|" + "---|" * len(bins)]
        for cls in self.config.classes:
            thr = self.config.iou_thresholds.get(cls, 0.5)
            for metric, label in (("3d", f"3D AP@{thr}"), ("bev", f"BEV AP@{thr}")):
                lines.append(f"| {cls} | {label} | " + " | ".join(f"{self.kitti[metric][cls][b]:.3f}" for b in bins) + " |")
            lines.append(f"| {cls} | nuScenes AP | " + " | ".join(f"{self.nuscenes[cls][b]['mean']:.3f}" for b in bins) + " |")
            lines.append(f"| {cls} | GT boxes | " + " | ".join(str(self.num_gt[cls][b]) for b in bins) + " |")
        lines += ["", "| class | bin | GT | no correction | mean corner error (m) | missed | to delete |", "|---|---|---|---|---|---|---|"]
        for cls in self.config.classes:
            for b in bins:
                q = self.prelabels[cls][b].to_dict()
                if not q["num_gt"] and not q["num_prelabels"]:
                    continue
                fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
                lines.append(
                    f"| {cls} | {b} | {q['num_gt']} | {fmt(q['no_correction_share'], '.1%')} | {fmt(q['mean_corner_error_m'], '.2f')} "
                    f"| {fmt(q['missed_share'], '.1%')} | {fmt(q['to_delete_share'], '.1%')} |"
                )
        return "\n".join(lines)


def _bin_names(config: EvalConfig) -> list[str]:
    return [f"{lo:g}-{hi:g}" for lo, hi in config.range_bins_m] + ["all"]


def _bins(config: EvalConfig) -> list[tuple[str, tuple[float, float]]]:
    return list(zip(_bin_names(config), list(config.range_bins_m) + [config.all_range_m]))


def evaluate(pairs: Sequence[tuple[Cuboids, Cuboids]], config: EvalConfig | None = None) -> EvalReport:
    """Evaluate predictions against ground truth.

    Args:
        pairs: per frame ``(ground_truth, predictions)``, both in one frame (``ego``); the
            ground truth's ``num_lidar_points`` decides which boxes count (see the module doc).
        config: what to evaluate (default :class:`EvalConfig`).

    Returns:
        :class:`EvalReport`.
    """
    config = config or EvalConfig()
    bins = _bins(config)
    kitti_acc = {m: {c: {b: _Accumulator() for b, _ in bins} for c in config.classes} for m in ("3d", "bev")}
    nus_acc = {c: {b: {t: _Accumulator() for t in DISTANCE_THRESHOLDS_M} for b, _ in bins} for c in config.classes}
    quality = {c: {b: PrelabelQuality() for b, _ in bins} for c in config.classes}
    for gt, pred in pairs:
        pred_range = _ranges(pred)
        for cls in config.classes:
            g = gt.subset(gt.labels == cls)
            p = pred.subset(pred.labels == cls)
            if len(g) == 0 and len(p) == 0:
                continue
            sims = {"3d": cuboid_iou_3d(g, p), "bev": cuboid_bev_iou(g, p)}
            dist = _bev_distance(g, p)
            p_range = pred_range[pred.labels == cls]
            thr = config.iou_thresholds.get(cls, 0.5)
            for name, rng in bins:
                counted = _counted(g, None, rng, config.min_points)
                in_bin = (p_range >= rng[0]) & (p_range < rng[1])
                for metric in ("3d", "bev"):
                    outcome = match_frame(p.scores, sims[metric], thr, counted, in_bin, True)
                    kitti_acc[metric][cls][name].add(p.scores, outcome, int(counted.sum()))
                for t in DISTANCE_THRESHOLDS_M:
                    outcome = match_frame(p.scores, dist, t, counted, in_bin, False)
                    nus_acc[cls][name][t].add(p.scores, outcome, int(counted.sum()))
        _prelabel_frame(gt, pred, config, bins, quality)
    kitti = {m: {c: {b: ap_r40(*kitti_acc[m][c][b].curve()) for b, _ in bins} for c in config.classes} for m in ("3d", "bev")}
    nuscenes: dict[str, dict[str, dict[str, float]]] = {}
    for c in config.classes:
        nuscenes[c] = {}
        for b, _ in bins:
            aps = {f"{t:g}": nuscenes_ap(*nus_acc[c][b][t].curve()) for t in DISTANCE_THRESHOLDS_M}
            aps["mean"] = float(np.mean(list(aps.values())))
            nuscenes[c][b] = aps
    num_gt = {c: {b: kitti_acc["3d"][c][b].num_gt for b, _ in bins} for c in config.classes}
    return EvalReport(kitti, nuscenes, quality, num_gt, len(pairs), config)


def _prelabel_frame(gt: Cuboids, pred: Cuboids, config: EvalConfig, bins: list, quality: dict) -> None:
    from scipy.optimize import linear_sum_assignment

    shown = pred.subset(pred.scores >= config.prelabel_score_threshold)
    known = np.isin(gt.labels, config.classes)
    gt = gt.subset(known)
    counted_any = _counted(gt, None, config.all_range_m, config.min_points)
    pair_of_gt = np.full(len(gt), -1)
    matched_pred = np.zeros(len(shown), bool)
    if len(gt) and len(shown):
        dist = _bev_distance(gt, shown)
        cost = np.where(dist <= config.prelabel_gate_m, dist, 1e6)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < 1e6
        pair_of_gt[rows[ok]] = cols[ok]
        matched_pred[cols[ok]] = True
    iou = cuboid_iou_3d(gt, shown) if len(gt) and len(shown) else np.zeros((len(gt), len(shown)))
    corner = np.zeros(len(gt))
    has = pair_of_gt >= 0
    if has.any():
        corner[has] = _corner_error(gt.subset(has), shown.subset(pair_of_gt[has]))
    gt_range = _ranges(gt)
    shown_range = _ranges(shown)
    for name, rng in bins:
        for cls in config.classes:
            q = quality[cls][name]
            sel = np.flatnonzero((gt.labels == cls) & counted_any & (gt_range >= rng[0]) & (gt_range < rng[1]))
            q.num_gt += len(sel)
            for k in sel:
                j = pair_of_gt[k]
                if j < 0:
                    q.missed += 1
                elif shown.labels[j] == cls and iou[k, j] >= config.iou_thresholds.get(cls, 0.5):
                    q.no_correction += 1
                else:
                    q.corrected += 1
                    q.corner_error_sum_m += float(corner[k])
            mine = (shown.labels == cls) & (shown_range >= rng[0]) & (shown_range < rng[1])
            q.num_prelabels += int(mine.sum())
            q.to_delete += int((mine & ~matched_pred).sum())

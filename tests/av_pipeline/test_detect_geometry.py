"""Rotated BEV IoU, 3D IoU and NMS against shapely polygons."""

from __future__ import annotations

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")
from shapely.geometry import Polygon  # noqa: E402

from av_pipeline.boxes import Cuboids  # noqa: E402
from av_pipeline.detect.geometry import bev_iou, cuboid_iou_3d, iou_3d, rotated_nms  # noqa: E402
from av_pipeline.errors import ShapeError  # noqa: E402


def _polygon(box: np.ndarray) -> Polygon:
    x, y, length, width, yaw = box
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [length / 2, width / 2]
    return Polygon(np.column_stack([x + c * local[:, 0] - s * local[:, 1], y + s * local[:, 0] + c * local[:, 1]]))


def _shapely_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, ba in enumerate(a):
        pa = _polygon(ba)
        for j, bb in enumerate(b):
            pb = _polygon(bb)
            union = pa.union(pb).area
            out[i, j] = pa.intersection(pb).area / union if union > 0 else 0.0
    return out


def _random_boxes(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    return np.column_stack(
        [rng.uniform(-spread, spread, n), rng.uniform(-spread, spread, n), rng.uniform(0.3, 6, n), rng.uniform(0.3, 3, n), rng.uniform(-np.pi, np.pi, n)]
    )


def test_bev_iou_matches_shapely_on_random_boxes():
    rng = np.random.default_rng(0)
    a = _random_boxes(rng, 60, 3.0)
    b = _random_boxes(rng, 60, 3.0)
    ours = bev_iou(a, b)
    ref = _shapely_iou(a, b)
    assert (ref > 0).sum() > 1000  # a third of the 3600 pairs overlap: the clipping is exercised
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_bev_iou_touching_nested_identical_and_degenerate():
    boxes = np.array(
        [
            [0.0, 0.0, 4.0, 2.0, 0.0],  # reference
            [4.0, 0.0, 4.0, 2.0, 0.0],  # touches along an edge
            [0.0, 0.0, 2.0, 1.0, 0.3],  # nested inside
            [0.0, 0.0, 4.0, 2.0, 0.0],  # identical
            [0.0, 0.0, 4.0, 2.0, np.pi],  # identical, heading flipped
            [0.0, 0.0, 0.0, 2.0, 0.0],  # zero length
            [4.0, 2.0, 4.0, 2.0, 0.0],  # touches at a corner
            [1.0, 0.0, 4.0, 2.0, 0.0],  # collinear edges, shifted
        ]
    )
    ours = bev_iou(boxes, boxes)
    ref = _shapely_iou(boxes, boxes)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert ours[0, 1] == 0.0 and ours[0, 6] == 0.0
    np.testing.assert_allclose(ours[0, 2], 2.0 / 8.0, atol=1e-9)
    np.testing.assert_allclose([ours[0, 3], ours[0, 4]], [1.0, 1.0], atol=1e-9)
    assert ours[5].max() == 0.0 and ours[:, 5].max() == 0.0


def test_iou_3d_matches_shapely_area_times_height_overlap():
    rng = np.random.default_rng(1)
    n = 50
    a = np.column_stack([_random_boxes(rng, n, 3.0), rng.uniform(-1, 1, n), rng.uniform(0.5, 3, n)])
    b = np.column_stack([_random_boxes(rng, n, 3.0), rng.uniform(-1, 1, n), rng.uniform(0.5, 3, n)])
    to7 = lambda m: m[:, [0, 1, 5, 2, 3, 6, 4]]  # noqa: E731  x y z l w h yaw
    ours = iou_3d(to7(a), to7(b))
    ref = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            pa, pb = _polygon(a[i, :5]), _polygon(b[j, :5])
            dz = min(a[i, 5] + a[i, 6] / 2, b[j, 5] + b[j, 6] / 2) - max(a[i, 5] - a[i, 6] / 2, b[j, 5] - b[j, 6] / 2)
            inter = pa.intersection(pb).area * max(dz, 0.0)
            union = pa.area * a[i, 6] + pb.area * b[j, 6] - inter
            ref[i, j] = inter / union
    assert (ref > 0).sum() > 300
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_cuboid_iou_3d_uses_product_boxes():
    a = Cuboids.from_arrays("ego", [[10.0, 0.0, 0.8]], [[4.0, 2.0, 1.6]], [0.0], ["car"])
    b = Cuboids.from_arrays("ego", [[10.0, 0.0, 1.6]], [[4.0, 2.0, 1.6]], [0.0], ["car"])
    np.testing.assert_allclose(cuboid_iou_3d(a, b), [[1.0 / 3.0]], atol=1e-12)


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    iou = _shapely_iou(boxes, boxes)
    while order:
        i = order.pop(0)
        keep.append(int(i))
        order = [j for j in order if iou[i, j] <= threshold]
    return keep


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5])
def test_rotated_nms_matches_shapely_reference(threshold):
    rng = np.random.default_rng(2)
    boxes = _random_boxes(rng, 150, 6.0)
    scores = rng.random(150)
    keep = rotated_nms(boxes, scores, threshold)
    assert keep.tolist() == _reference_nms(boxes, scores, threshold)
    assert 0 < len(keep) < 150


def test_bad_shapes_name_the_argument():
    with pytest.raises(ShapeError, match=r"boxes_a: expected \(N, 5\)"):
        bev_iou(np.zeros((3, 4)), np.zeros((1, 5)))
    with pytest.raises(ShapeError, match="boxes_b"):
        iou_3d(np.zeros((1, 7)), np.full((1, 7), np.nan))
    assert bev_iou(np.zeros((0, 5)), np.zeros((2, 5))).shape == (0, 2)
    assert rotated_nms(np.zeros((0, 5)), np.zeros(0), 0.1).shape == (0,)

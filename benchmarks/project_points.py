"""Benchmark: CameraModel.project vs cv2.projectPoints on 1,000,000 points.

Both run in this process on the same points (a radtan camera with 5 coefficients, points
in front of it spread a little beyond the field of view). Prints the median wall time of
several repeats for each, the ratio, and checks that both agree on the points ours
reports visible. Exits 1 if they disagree by more than 1e-6 px.

Run: .venv/bin/python benchmarks/project_points.py [--points N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from calibration.camera import VISIBLE, CameraModel

GOAL_SPEEDUP = 3.0
AGREEMENT_PX = 1e-6


def make_points(count: int, seed: int = 0) -> np.ndarray:
    """``(count, 3)`` float64 camera-frame points with z in [0.5, 80] m, ~1.3x the field of view."""
    rng = np.random.default_rng(seed)
    points_camera = np.empty((count, 3))
    points_camera[:, 2] = rng.uniform(0.5, 80.0, count)
    points_camera[:, 0] = rng.uniform(-0.6, 0.6, count) * points_camera[:, 2]
    points_camera[:, 1] = rng.uniform(-0.4, 0.4, count) * points_camera[:, 2]
    return points_camera


def median_ms(function, repeats: int) -> tuple[float, object]:
    times_ms = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times_ms.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times_ms), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    import cv2  # test/benchmark dependency only

    camera = CameraModel.from_K(
        [[2152.8, 0.0, 971.3], [0.0, 2155.5, 605.9], [0.0, 0.0, 1.0]],
        1920,
        1200,
        "radtan",
        (-0.1192, 0.162, 0.00073985, 0.0014, -0.02),
    )
    points_camera = make_points(args.points)
    K = camera.K
    D = np.array(camera.distortion)
    zero = np.zeros(3)

    camera.project(points_camera[:1000])  # warm-up
    cv2.projectPoints(points_camera[:1000], zero, zero, K, D)
    ours_ms, projection = median_ms(lambda: camera.project(points_camera), args.repeats)
    cv2_ms, (uv_cv2, _) = median_ms(lambda: cv2.projectPoints(points_camera, zero, zero, K, D), args.repeats)
    uv_cv2 = uv_cv2.reshape(-1, 2)

    visible = projection.status == VISIBLE
    max_diff_px = float(np.max(np.abs(projection.uv_px[visible] - uv_cv2[visible]))) if visible.any() else 0.0
    speedup = cv2_ms / ours_ms
    print(f"points: {args.points:,}  visible: {int(visible.sum()):,}  repeats: {args.repeats}")
    print(f"CameraModel.project : {ours_ms:8.1f} ms (median)")
    print(f"cv2.projectPoints   : {cv2_ms:8.1f} ms (median)")
    print(f"speed-up            : {speedup:8.2f}x (goal >= {GOAL_SPEEDUP:g}x)")
    print(f"max |uv - uv_cv2| on visible points: {max_diff_px:.3e} px")
    if max_diff_px > AGREEMENT_PX:
        print(f"FAIL: outputs differ by more than {AGREEMENT_PX:g} px", file=sys.stderr)
        return 1
    if speedup < GOAL_SPEEDUP:
        print(f"warning: speed-up below the {GOAL_SPEEDUP:g}x goal on this machine", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

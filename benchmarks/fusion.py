"""Benchmark: project + z-buffer + paint one 120k-point sweep into six 1600x900 cameras.

Ours (:mod:`av_pipeline.fusion`: numba kernels) against a straightforward numpy
implementation of the same products, run side by side in this process on the same sweep:

- numpy: per camera, ``SE3.transform_points`` in float64, ``CameraModel.project`` (the
  library's numpy projection), a sort-based z-buffer (stable argsort by depth, first index
  per pixel with ``np.unique``) giving the same sparse depth image (occupied pixels only,
  in point order), fancy-index painting with the same "most central camera wins" rule;
- ours: ``project_to_cameras``, ``depth_image`` per camera, ``paint_points``.

The sweep is synthetic and reproducible: a 64-beam spinning LiDAR (1,875 columns, 120,000
points) ray-cast onto a ground plane and a wall whose distance varies with azimuth, with six
nuScenes-like cameras (f = 1266 px) around the car and random images. Before timing, the
outputs are checked equal: statuses, pixels and depths (both stored as float32, computed in
float64), depth images and winning point per pixel, colours and the painting camera of every
point. Exits 1 if they differ.

Timing: numba kernels are compiled (or loaded from the cache) and both sides warmed up
first; then ``--repeats`` alternating runs; medians reported, and the best run of each
(closest to an idle machine when other jobs share it). Both sides run on one thread: the
fusion kernels are serial on purpose (docs/fusion.md) and BLAS is limited to one thread.

Run: .venv/bin/python benchmarks/fusion.py [--repeats R] [--points-per-ring N]
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: the numpy side's (N, 3) @ (3, 3) products would
# otherwise start OpenBLAS threads that keep spinning after each call and take the core from
# whatever runs next (measured on 2 cores: both sides 2-3x slower, the ratio noisier).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from av_pipeline.fusion import depth_image, paint_points, project_to_cameras  # noqa: E402
from calibration import SE3, CameraModel  # noqa: E402
from calibration.camera import VISIBLE  # noqa: E402

GOAL_SPEEDUP = 3.0
WIDTH_PX, HEIGHT_PX = 1600, 900
CAMERA_YAWS_DEG = {"front": 0.0, "front_left": 55.0, "front_right": -55.0, "back_left": 110.0, "back_right": -110.0, "back": 180.0}


def make_sweep(rings: int = 64, columns: int = 1875, seed: int = 0) -> np.ndarray:
    """``(rings * columns, 4)`` float32 x, y, z, intensity of a spinning LiDAR 1.8 m above a flat ground."""
    rng = np.random.default_rng(seed)
    elevation = np.radians(np.linspace(-25.0, 5.0, rings))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, columns, endpoint=False)[None, :] + rng.normal(0.0, 1e-4, (rings, columns))
    direction = np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation) * np.ones_like(azimuth)], axis=-1
    ).reshape(-1, 3)
    wall_m = (25.0 + 15.0 * np.sin(3.0 * azimuth) ** 2).reshape(-1)  # horizontal distance to a wall
    with np.errstate(divide="ignore"):
        to_ground = np.where(direction[:, 2] < 0.0, -1.8 / direction[:, 2], np.inf)
    to_wall = wall_m / np.hypot(direction[:, 0], direction[:, 1])
    distance = np.minimum(to_ground, to_wall) + rng.normal(0.0, 0.02, len(direction))
    points = np.empty((len(direction), 4), dtype=np.float32)
    points[:, :3] = direction * distance[:, None]
    points[:, 3] = rng.uniform(0.0, 1.0, len(direction))
    return points


def make_cameras() -> tuple[dict[str, CameraModel], dict[str, SE3]]:
    """Six 1600x900 cameras around the car; LiDAR 1.8 m above the ego origin, cameras 1.5 m."""
    model = CameraModel(WIDTH_PX, HEIGHT_PX, 1266.4, 1266.4, 816.3, 491.5)
    # camera axes (x right, y down, z forward) in a forward-looking vehicle frame
    ego_R_camera_forward = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    ego_SE3_lidar = SE3.from_yaw_translation(0.0, [0.9, 0.0, 1.8])
    cameras, camera_SE3_lidar = {}, {}
    for name, yaw_deg in CAMERA_YAWS_DEG.items():
        yaw = np.radians(yaw_deg)
        mount = SE3.from_yaw_translation(yaw, [1.0 * np.cos(yaw), 1.0 * np.sin(yaw), 1.5])
        ego_SE3_camera = mount.compose(SE3(ego_R_camera_forward, np.zeros(3)))
        cameras[name] = model
        camera_SE3_lidar[name] = ego_SE3_camera.inverse().compose(ego_SE3_lidar)
    return cameras, camera_SE3_lidar


def fuse_ours(points, cameras, camera_SE3_lidar, images):
    projections = project_to_cameras(points, cameras, camera_SE3_lidar)
    depth = {name: depth_image(projection) for name, projection in projections.items()}
    painted = paint_points(projections, images)
    return projections, depth, painted


def fuse_numpy(points, cameras, camera_SE3_lidar, images):
    """The straightforward numpy implementation: same products, same rules."""
    count = len(points)
    xyz = points[:, :3].astype(np.float64)
    rgb = np.zeros((count, 3), dtype=np.uint8)
    camera_index = np.full(count, -1, dtype=np.int16)
    best = np.full(count, np.inf)
    projections, depth = {}, {}
    for camera_id, (name, transform) in enumerate(camera_SE3_lidar.items()):
        model = cameras[name]
        projection = model.project(transform.transform_points(xyz))
        # the same storage as ours: float32 pixels and depths (computed in float64)
        uv_px, depth_m = projection.uv_px.astype(np.float32), projection.depth_m.astype(np.float32)
        projections[name] = (uv_px, depth_m, projection.status)
        visible = np.flatnonzero(projection.status == VISIBLE)
        u, v = uv_px[visible, 0].astype(np.float64), uv_px[visible, 1].astype(np.float64)
        cols = np.clip(np.floor(u + 0.5), 0, model.width_px - 1).astype(np.int64)
        rows = np.clip(np.floor(v + 0.5), 0, model.height_px - 1).astype(np.int64)
        # z-buffer: sort by depth (stable: lower index first on ties), first point per pixel
        pixel = rows * model.width_px + cols
        order = np.argsort(depth_m[visible], kind="stable")
        _, first = np.unique(pixel[order], return_index=True)
        won = np.sort(order[first])  # positions in `visible`, in point order
        depth[name] = (rows[won], cols[won], depth_m[visible[won]], visible[won])
        # painting: the camera that sees the point nearest its principal point wins
        score = ((u - model.cx_px) / model.fx_px) ** 2 + ((v - model.cy_px) / model.fy_px) ** 2
        better = score < best[visible]
        chosen = visible[better]
        best[chosen] = score[better]
        camera_index[chosen] = camera_id
        rgb[chosen] = images[name][rows[better], cols[better]]
    return projections, depth, (rgb, camera_index)


def check_equal(ours, reference) -> list[str]:
    problems = []
    projections, depth, painted = ours
    ref_projections, ref_depth, (ref_rgb, ref_camera_index) = reference
    for name, projection in projections.items():
        ref_uv_px, ref_depth_m, ref_status = ref_projections[name]
        if not np.array_equal(projection.status, ref_status):
            problems.append(f"{name}: {int((projection.status != ref_status).sum())} statuses differ")
        if not (np.array_equal(projection.uv_px, ref_uv_px, equal_nan=True) and np.array_equal(projection.depth_m, ref_depth_m)):
            diff = np.nanmax(np.abs(projection.uv_px.astype(np.float64) - ref_uv_px))
            problems.append(f"{name}: pixels or depths differ (pixels by up to {diff:.3g} px)")
        ref_rows, ref_cols, ref_depth_m, ref_index = ref_depth[name]
        got = depth[name]
        if not (
            np.array_equal(got.rows, ref_rows) and np.array_equal(got.cols, ref_cols)
            and np.array_equal(got.depth_m, ref_depth_m) and np.array_equal(got.point_index, ref_index)
        ):  # fmt: skip
            problems.append(f"{name}: depth images differ ({len(got)} vs {len(ref_index)} occupied pixels)")
    if not np.array_equal(painted.rgb, ref_rgb) or not np.array_equal(painted.camera_index, ref_camera_index):
        problems.append("painted colours or cameras differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--points-per-ring", type=int, default=1875)
    args = parser.parse_args(argv)

    points = make_sweep(columns=args.points_per_ring)
    cameras, camera_SE3_lidar = make_cameras()
    rng = np.random.default_rng(1)
    images = {name: rng.integers(0, 256, (HEIGHT_PX, WIDTH_PX, 3), dtype=np.uint8) for name in cameras}

    start = time.perf_counter()
    ours = fuse_ours(points, cameras, camera_SE3_lidar, images)  # compile or load the numba cache
    first_call_s = time.perf_counter() - start
    reference = fuse_numpy(points, cameras, camera_SE3_lidar, images)
    problems = check_equal(ours, reference)
    visible = {name: int(p.valid.sum()) for name, p in ours[0].items()}

    ours_ms, numpy_ms = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine state
        start = time.perf_counter()
        fuse_ours(points, cameras, camera_SE3_lidar, images)
        ours_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        fuse_numpy(points, cameras, camera_SE3_lidar, images)
        numpy_ms.append((time.perf_counter() - start) * 1e3)
    ours_median, numpy_median = statistics.median(ours_ms), statistics.median(numpy_ms)
    speedup = numpy_median / ours_median

    print(f"sweep: {len(points):,} points, {len(cameras)} cameras {WIDTH_PX}x{HEIGHT_PX}, one thread each (serial kernels, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']})")
    print(f"points on each image: {visible}; painted: {int(ours[2].painted.sum()):,}")
    print(f"first call (numba compile or cache load): {first_call_s:.2f} s")
    print(f"av_pipeline.fusion : {ours_median:7.1f} ms per sweep (median of {args.repeats}; best {min(ours_ms):.1f} ms)")
    print(f"numpy              : {numpy_median:7.1f} ms per sweep (median of {args.repeats}; best {min(numpy_ms):.1f} ms)")
    print(f"speed-up           : {speedup:7.2f}x on medians, {min(numpy_ms) / min(ours_ms):.2f}x on best runs (goal >= {GOAL_SPEEDUP:g}x)")
    print("outputs equal      : " + ("yes" if not problems else "NO"))
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    if speedup < GOAL_SPEEDUP:
        print(f"warning: speed-up below the {GOAL_SPEEDUP:g}x goal on this machine", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo's pictures tell what was done: titles, every box source with a legend, range from
the data, a depth colour bar, readable times and labels that do not overlap.

Checked on what matplotlib actually drew (the :class:`FigureSummary` each save returns is read
back from the figure's artists), on the real KITTI frame 000001 (no per-point times, no poses,
ground truth but no onboard perception, a truck 69 m ahead) and on the bundled synthetic log
(de-skewed, motion-compensated, both box sources).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.figures import FigureSummary, bev_extent_m, format_time_ns, save_frame_figures
from av_pipeline.frame_products import frame_products, trajectory_from_poses
from av_pipeline.readers import open_log

#: A raw nanosecond timestamp (16+ digits) must never reach a title.
RAW_NS = re.compile(r"\d{16,}")


def _overlaps(boxes: tuple[tuple[float, float, float, float], ...]) -> list[tuple[int, int]]:
    pairs = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            u0, v0, u1, v1 = boxes[j]
            if x0 < u1 and u0 < x1 and y0 < v1 and v0 < y1:
                pairs.append((i, j))
    return pairs


@pytest.fixture(scope="module")
def kitti_figures(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, FigureSummary]:
    with open_log(shared_data / "kitti" / "training") as reader:
        frame = reader.load_frame(reader.list_frames()[0])
    assert frame.onboard is None and frame.annotations is not None and frame.world_SE3_ego is None
    products = frame_products(frame, None)
    folder = tmp_path_factory.mktemp("kitti_figures")
    return {Path(s.path).name: s for s in save_frame_figures(folder, frame, products)}


@pytest.mark.realdata
def test_kitti_titles_say_what_was_not_done(kitti_figures: dict[str, FigureSummary]) -> None:
    bev, camera = kitti_figures["bev.png"], kitti_figures["camera_image_2.png"]
    for summary in (bev, camera):
        assert not RAW_NS.search(summary.title), summary.title
        assert "onboard" not in summary.title.lower().replace("no onboard", ""), summary.title
    assert "not de-skewed" in bev.title and "no onboard perception" in bev.title
    assert "not motion-compensated" in camera.title and "motion-compensated to" not in camera.title
    assert format_time_ns(1_317_027_745_964_389_445) == "2011-09-26 09:02:25.964 UTC"


@pytest.mark.realdata
def test_kitti_bev_range_includes_the_truck_at_69_m(kitti_figures: dict[str, FigureSummary]) -> None:
    bev = kitti_figures["bev.png"]
    x_min, x_max, y_min, y_max = bev.limits
    # Plot y is ego x (forward): the truck's far edge is about 75 m ahead.
    assert y_max >= 76.0 and y_min <= -10.0
    assert x_max - x_min == pytest.approx(y_max - y_min)
    assert bev.legend == ("ground truth (3)", "LiDAR, camera colours", "LiDAR, seen by no camera")


@pytest.mark.realdata
def test_kitti_camera_draws_ground_truth_with_legend_labels_and_colour_bar(kitti_figures: dict[str, FigureSummary]) -> None:
    camera = kitti_figures["camera_image_2.png"]
    assert camera.legend == ("ground truth (3 in view)",)
    assert sorted(camera.labels) == ["car", "cyclist", "truck"]
    assert camera.colorbar_label == "LiDAR depth (m)"
    assert not _overlaps(camera.label_boxes_px), camera.label_boxes_px


def test_bev_extent_comes_from_the_data() -> None:
    from av_pipeline.boxes import Cuboids

    rng = np.random.default_rng(0)
    points = rng.uniform(-20.0, 20.0, (5000, 3))
    near = Cuboids.from_arrays("ego", [[5.0, 2.0, 0.8]], [[4.0, 1.8, 1.6]], [0.0], ["car"])
    far = Cuboids.from_arrays("ego", [[118.0, -3.0, 1.5]], [[12.0, 2.6, 3.0]], [0.3], ["truck"])
    assert 20.0 <= bev_extent_m(points, {"a": (near, "lime")}) <= 30.0
    assert bev_extent_m(points, {"a": (near, "lime"), "b": (far, "orange")}) >= 124.0
    # A few far-away stray points do not blow the view up.
    stray = np.vstack([points, [[400.0, 0.0, 0.0], [0.0, -350.0, 0.0]]])
    assert bev_extent_m(stray, {}) <= 30.0


@pytest.fixture(scope="module")
def synthetic_figures(tmp_path_factory: pytest.TempPathFactory):
    from av_pipeline.synthetic import bundled_log

    with open_log(bundled_log().mcap) as reader:
        refs = reader.list_frames()
        frames = [reader.load_frame(ref) for ref in refs[:3]]
    trajectory = trajectory_from_poses(
        [f.timestamp_ns for f in frames],
        [f.world_SE3_ego.translation for f in frames],
        [f.world_SE3_ego.as_wxyz() for f in frames],
    )
    frame = frames[1]
    products = frame_products(frame, trajectory)
    folder = tmp_path_factory.mktemp("synthetic_figures")
    return frame, products, {Path(s.path).name: s for s in save_frame_figures(folder, frame, products)}


def test_synthetic_titles_say_what_was_done_and_every_source_is_in_the_legend(synthetic_figures) -> None:
    frame, products, figures = synthetic_figures
    assert products.fusion.deskewed and products.fusion.motion_compensated
    bev = figures["bev.png"]
    assert "de-skewed" in bev.title and "not de-skewed" not in bev.title and not RAW_NS.search(bev.title)
    unseen = int((frame.annotations.num_lidar_points == 0).sum())
    assert unseen > 0  # far or hidden objects: drawn dashed, and the legend says how many
    assert bev.legend[:2] == (
        f"ground truth ({len(frame.annotations)}, {unseen} without LiDAR points: dashed)",
        f"onboard perception ({len(frame.onboard.cuboids)})",
    )
    for camera in products.fusion.projections:
        summary = figures[f"camera_{camera}.png"]
        assert "motion-compensated to the image time" in summary.title, summary.title
        assert not RAW_NS.search(summary.title)
        assert [entry.split(" (")[0] for entry in summary.legend] == ["ground truth", "onboard perception"]
        assert summary.colorbar_label == "LiDAR depth (m)"
        assert not _overlaps(summary.label_boxes_px), camera


def test_a_frame_without_boxes_says_so(synthetic_figures, tmp_path: Path) -> None:
    frame, products, _ = synthetic_figures
    bare = replace(frame, onboard=None, annotations=None)
    figures = {Path(s.path).name: s for s in save_frame_figures(tmp_path, bare, products)}
    assert "no boxes" in figures["bev.png"].title
    assert all(not entry.startswith(("ground truth", "onboard")) for entry in figures["bev.png"].legend)
    for name, summary in figures.items():
        if name.startswith("camera_"):
            assert summary.legend == () and summary.labels == ()

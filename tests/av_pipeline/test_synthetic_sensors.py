"""Synthetic sensors against real data: point counts, car points by range, ground split,
per-point timing and motion skew, and the ground truth's self-consistency."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.readers import open_log
from av_pipeline.readers.kitti import read_kitti_labels
from av_pipeline.synthetic import SimulationConfig, SyntheticDrive, default_cameras, hdl64e_elevations_deg
from av_pipeline.synthetic.materials import GROUND_IDS, SEMANTIC_ID

FRAMES = (0, 15, 29)


@pytest.fixture(scope="module")
def drives() -> list[SyntheticDrive]:
    """Two 30-frame drives (small cameras: these tests are about the LiDAR and the boxes)."""
    return [SyntheticDrive(SimulationConfig(frames=30, seed=seed, cameras=default_cameras(0.25))) for seed in (0, 1)]


@pytest.fixture(scope="module")
def sweeps(drives):
    return [(drive, k, drive.sweep(k)) for drive in drives for k in FRAMES]


@pytest.fixture(scope="module")
def rendered(drives):
    return drives[0].frame(15)


def test_hdl64e_beam_table() -> None:
    elevations = np.array(hdl64e_elevations_deg())
    assert len(elevations) == 64 and elevations[0] == pytest.approx(2.0) and elevations[-1] == pytest.approx(-24.8)
    spacing = -np.diff(elevations)
    assert np.all(spacing > 0)
    np.testing.assert_allclose(spacing[:31], 1 / 3, atol=0.01)  # upper block
    np.testing.assert_allclose(spacing[32:], 0.515, atol=0.01)  # lower block


def test_points_per_sweep_like_an_hdl64e(sweeps) -> None:
    for _, _, swept in sweeps:
        lidar = swept.lidar
        assert 100_000 <= lidar.num_points <= 130_000
        assert lidar.columns == ("x", "y", "z", "intensity", "ring")
        assert set(np.unique(lidar.column("ring")).astype(int)) == set(range(64))
        intensity = lidar.column("intensity")
        assert intensity.min() >= 0.0 and intensity.max() < 1.0
        assert 0.15 < intensity.mean() < 0.4  # KITTI's reflectance averages about 0.25


def test_points_are_timed_across_the_rotation(sweeps) -> None:
    """Each point's time follows its azimuth: -50 ms facing backwards, 0 facing forward, +50 ms at the end."""
    drive, _, swept = sweeps[0]
    lidar = swept.lidar
    offsets = lidar.time_offsets_ns
    assert offsets.min() >= -50_000_000 and offsets.max() <= 50_000_000
    assert np.all(np.diff(offsets) >= 0)  # firing order
    azimuth = np.arctan2(lidar.xyz[:, 1], lidar.xyz[:, 0])
    expected = (np.pi - azimuth) / (2 * np.pi) * 100e6 - 50e6  # clockwise from the back
    error = np.abs(expected - offsets)
    assert np.percentile(error, 99) < 0.2e6  # the ego turns a little during the sweep


def test_motion_skew_is_real(sweeps) -> None:
    """Static points land on the static world only when each is moved by the ego pose at its own
    time: de-skewed with the fusion module they sit on the surfaces, taken as one rigid sweep they do not."""
    import open3d as o3d

    from av_pipeline.fusion import deskew_points

    drive, index, swept = sweeps[1]
    lidar = swept.lidar
    static = (swept.point_track_ids < 0) & np.isin(swept.point_semantic, [SEMANTIC_ID["building"], SEMANTIC_ID["pole"]])
    rear = np.abs(lidar.time_offsets_ns) > 35_000_000  # captured 35-50 ms from the sweep time
    chosen = static & rear
    assert chosen.sum() > 200
    ego_SE3_lidar = drive.rig.lidars[lidar.sensor]
    world_SE3_ego = drive.truths[index].world_SE3_ego
    trajectory = drive.world_SE3_ego_trajectory()
    deskewed = deskew_points(lidar.xyz[chosen], lidar.time_offsets_ns[chosen], trajectory, ego_SE3_lidar, lidar.timestamp_ns)
    as_world = world_SE3_ego.compose(ego_SE3_lidar)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(drive.static.mesh.vertices.astype(np.float32)), o3d.core.Tensor(drive.static.mesh.triangles.astype(np.uint32)))

    def distance(points_lidar: np.ndarray) -> np.ndarray:
        return scene.compute_distance(o3d.core.Tensor(as_world.transform_points(points_lidar).astype(np.float32))).numpy()

    assert np.median(distance(deskewed)) < 0.03  # on the surface, up to range noise
    assert np.median(distance(lidar.xyz[chosen])) > 0.15  # about 0.4 m of ego travel


def _kitti_car_references(shared_data: Path) -> np.ndarray:
    """``(range_m, num_lidar_points)`` of the real KITTI cars that are neither truncated nor heavily occluded."""
    refs = []
    with open(shared_data / "kitti" / "demo_000008" / "000008.pkl", "rb") as f:
        info = pickle.load(f)
    for inst in info["data_list"][0]["instances"]:
        if inst["bbox_label_3d"] == 2 and inst["truncated"] < 0.1 and inst["occluded"] <= 1:
            x, _, z = inst["bbox_3d"][:3]
            refs.append((float(np.hypot(x, z)), int(inst["num_lidar_pts"])))
    split = shared_data / "kitti" / "training"
    frame = open_log(split).iter_frames().__next__()
    labels = read_kitti_labels(split / "label_2" / "000001.txt")
    for k, label in enumerate(frame.annotations.source_labels):  # KITTI's own spelling: "Car", not "Van"
        if label == "Car" and labels.truncated[k] < 0.1 and labels.occluded[k] <= 1:
            refs.append((float(np.hypot(*frame.annotations.centers_m[k, :2])), int(frame.annotations.num_lidar_points[k])))
    return np.array(sorted(refs))


def _interpolate_log_log(refs: np.ndarray, range_m: float) -> float:
    r, n = np.log(refs[:, 0]), np.log(refs[:, 1])
    return float(np.exp(np.interp(np.log(range_m), r, n)))


@pytest.mark.realdata
def test_car_points_by_range_match_kitti(shared_data: Path, sweeps) -> None:
    refs = _kitti_car_references(shared_data)
    assert len(refs) >= 4 and refs[:, 0].min() < 12 and refs[:, 0].max() > 50
    rows = []
    for drive, index, swept in sweeps:
        boxes, truth = swept.annotations, drive.truths[index]
        azimuth = np.degrees(np.arctan2(boxes.centers_m[:, 1], boxes.centers_m[:, 0] - 1.2))
        # cars ahead (KITTI labels the front camera's view) and in clear view (KITTI occlusion 0-1)
        keep = (boxes.labels == "car") & (np.abs(azimuth) <= 60) & (truth.lidar_visibility >= 0.7)
        rows += list(zip(truth.range_m[keep], boxes.num_lidar_points[keep]))
    rows = np.array(rows)
    for target, (lo, hi) in ((10.0, (8.0, 12.0)), (30.0, (26.0, 34.0)), (50.0, (44.0, 56.0))):
        in_bin = (rows[:, 0] >= lo) & (rows[:, 0] <= hi)
        assert in_bin.sum() >= 4, f"too few synthetic cars near {target} m"
        synthetic = float(np.median(rows[in_bin, 1]))
        real = _interpolate_log_log(refs, target)
        assert real / 2 <= synthetic <= real * 2, f"{target} m: synthetic median {synthetic} vs KITTI {real:.0f}"


@pytest.mark.realdata
def test_ground_split_is_plausible(shared_data: Path, sweeps) -> None:
    kitti = np.fromfile(shared_data / "kitti" / "training" / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    kitti_ground = float((kitti[:, 2] < -1.5).mean())  # the KITTI velodyne is 1.73 m above the road
    for drive, _, swept in sweeps:
        ground = np.isin(swept.point_semantic, GROUND_IDS)
        share = float(ground.mean())
        assert 0.45 <= share <= 0.8
        assert abs(share - kitti_ground) < 0.15
        # a plain height threshold finds about the same split in the synthetic sweep as in KITTI's
        by_height = float((swept.lidar.xyz[:, 2] < -1.5).mean())
        assert abs(by_height - share) < 0.06


def test_lane_markings_are_brighter_than_asphalt(sweeps) -> None:
    _, _, swept = sweeps[0]
    intensity = swept.lidar.column("intensity")
    marking = intensity[swept.point_semantic == SEMANTIC_ID["lane_marking"]]
    road = intensity[swept.point_semantic == SEMANTIC_ID["road"]]
    assert len(marking) > 100 and np.median(marking) > 2 * np.median(road)


def test_box_point_counts_equal_a_point_in_box_count(sweeps) -> None:
    for drive, _, swept in sweeps:
        points_ego = drive.rig.lidars[swept.lidar.sensor].transform_points(swept.lidar.xyz)
        boxes = swept.annotations
        np.testing.assert_array_equal(boxes.num_lidar_points, boxes.count_points(points_ego))
        assert boxes.num_lidar_points.sum() > 5_000


def test_visibility_and_hits_agree(sweeps) -> None:
    """Visibility is judged at the frame time; the sweep sees an object when its beam passes (up
    to 50 ms apart), so a fast occluder close to the LiDAR may hide or reveal a little more."""
    hidden_hits, clear_hits = [], []
    for drive, index, swept in sweeps:
        truth = drive.truths[index]
        hidden_hits += list(swept.lidar_hits[truth.lidar_visibility == 0])
        clear_hits += list(swept.lidar_hits[(truth.lidar_visibility == 1) & (truth.range_m < 30)])
    assert len(hidden_hits) > 20 and len(clear_hits) > 20
    assert np.mean(np.array(hidden_hits) <= 20) > 0.9
    assert np.all(np.array(clear_hits) > 0)


def test_projected_boxes_land_on_rendered_objects(drives, rendered) -> None:
    """Each object's rendered pixels lie inside its cuboid projected with the rig's camera model."""
    frame = rendered.frame
    checked = filled = 0
    for camera, track_image in rendered.camera_track_ids.items():
        rig_camera = frame.rig.cameras[camera]
        camera_SE3_ego = rig_camera.ego_SE3_camera.inverse()
        for k, track in enumerate(frame.annotations.track_ids):
            rows, cols = np.nonzero(track_image == track)
            if len(rows) < 60:
                continue
            corners = frame.annotations.subset(np.array([k])).corners_m()[0]
            edges = [corners[a] + f * (corners[b] - corners[a]) for a, b in _EDGES for f in np.linspace(0, 1, 16)]
            projection = rig_camera.model.project(camera_SE3_ego.transform_points(np.array(edges)))
            if (projection.status == 1).any():  # partly behind the camera: the edge hull is not the silhouette
                continue
            uv = projection.uv_px[np.isfinite(projection.uv_px).all(axis=1)]
            lo, hi = uv.min(axis=0) - 1.5, uv.max(axis=0) + 1.5
            inside = (cols >= lo[0]) & (cols <= hi[0]) & (rows >= lo[1]) & (rows <= hi[1])
            assert inside.mean() > 0.99, f"{camera}: track {track} pixels outside its projected box"
            # and an object in full view fills a good part of its box (the box is not just large)
            if rendered.truth.camera_visibility[camera][k] == 1.0:
                box_area = (min(hi[0], track_image.shape[1]) - max(lo[0], 0)) * (min(hi[1], track_image.shape[0]) - max(lo[1], 0))
                assert len(rows) / box_area > 0.3
                filled += 1
            checked += 1
    assert checked >= 8 and filled >= 3
    # the rendered colour at object pixels is the object's, not the road's: decoded JPEG agrees
    front = frame.images["front"].decode().astype(float)
    mask = rendered.camera_track_ids["front"] >= 0
    assert np.abs(front[mask] - rendered.images_rgb["front"][mask]).mean() < 8


_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def test_tracks_are_consistent(drives) -> None:
    drive = drives[0]
    first, last = drive.truths[0], drive.truths[29]
    common = np.intersect1d(first.cuboids.track_ids, last.cuboids.track_ids)
    assert len(common) > 20
    for track in common:
        a = np.flatnonzero(first.cuboids.track_ids == track)[0]
        b = np.flatnonzero(last.cuboids.track_ids == track)[0]
        assert first.cuboids.labels[a] == last.cuboids.labels[b]
        np.testing.assert_array_equal(first.cuboids.sizes_m[a], last.cuboids.sizes_m[b])
        world_a = first.world_SE3_ego.transform_points(first.cuboids.centers_m[a : a + 1])[0]
        world_b = last.world_SE3_ego.transform_points(last.cuboids.centers_m[b : b + 1])[0]
        speed = np.linalg.norm(first.velocities_mps[a])
        # constant speed along a (possibly curved) lane: the chord is at most the distance travelled
        assert np.linalg.norm(world_b - world_a) == pytest.approx(speed * 2.9, rel=0.05, abs=0.3)

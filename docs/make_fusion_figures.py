"""Make the pictures of docs/fusion.md from the shared nuScenes keyframe.

Writes docs/images/fusion_painted_points.jpg (the sweep seen from above, each point in the
colour the cameras painted it, grey where no camera sees it) and
docs/images/fusion_depth_overlay.jpg (the six camera images with the z-buffered LiDAR depth
drawn on them). The rig and the ego trajectory are rebuilt from the keyframe's info pkl
exactly as tests/av_pipeline/test_fusion_nuscenes.py does.

Run: .venv/bin/python docs/make_fusion_figures.py [--data ../shared/data] [--out docs/images]
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from av_pipeline.fusion import fuse_sweep
from av_pipeline.readers.nuscenes import load_nuscenes_sweep
from av_pipeline.records import CameraImage
from calibration import SE3, CameraModel, PoseTrajectory, RigCamera, SensorRig

REPO = Path(__file__).resolve().parents[1]
LAYOUT = [["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"], ["CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"]]


def file_time_ns(name: str) -> int:
    return int(name.split("__")[-1].split(".")[0]) * 1000


def load_keyframe(folder: Path):
    """Sweep, rig, images and ``world_SE3_ego`` (the LiDAR-time pose and CAM_FRONT_LEFT's, recovered from its lidar2cam)."""
    with open(folder / "n015-2018-07-24-11-22-45+0800.pkl", "rb") as handle:
        info = pickle.load(handle)["data_list"][0]
    sweep = load_nuscenes_sweep(folder / info["lidar_points"]["lidar_path"])
    ego_SE3_lidar = SE3.from_matrix(np.array(info["lidar_points"]["lidar2ego"]))
    world_SE3_ego_at_lidar = SE3.from_matrix(np.array(info["ego2global"]))
    anchor = info["images"]["CAM_FRONT_LEFT"]
    world_SE3_ego_at_anchor = (
        world_SE3_ego_at_lidar.compose(ego_SE3_lidar)
        .compose(SE3.from_matrix(np.array(anchor["lidar2cam"])).inverse())
        .compose(SE3.from_matrix(np.array(anchor["cam2ego"])).inverse())
    )
    trajectory = PoseTrajectory.from_poses(
        [file_time_ns(anchor["img_path"]), sweep.timestamp_ns], [world_SE3_ego_at_anchor, world_SE3_ego_at_lidar]
    )
    cameras = {
        name: RigCamera(CameraModel.from_K(np.array(camera["cam2img"]), 1600, 900), SE3.from_matrix(np.array(camera["cam2ego"])))
        for name, camera in info["images"].items()
    }
    rig = SensorRig(cameras=cameras, lidars={"LIDAR_TOP": ego_SE3_lidar})
    images = {
        name: CameraImage(name, file_time_ns(camera["img_path"]), "jpeg", (folder / camera["img_path"]).read_bytes(), 1600, 900)
        for name, camera in info["images"].items()
    }
    return sweep, rig, images, trajectory


def painted_points_figure(fusion, rig: SensorRig, path: Path) -> None:
    """Left: a chase camera behind and above the car; right: from above. Unpainted points in dim blue."""
    import matplotlib.pyplot as plt

    from av_pipeline.fusion import project_points

    points_ego = rig.ego_SE3_lidar("LIDAR_TOP").transform_points(fusion.points_lidar.astype(np.float64))
    painted = fusion.painted.painted
    colours = np.where(painted[:, None], fusion.painted.rgb / 255.0, [0.16, 0.2, 0.42])
    fig, (chase_ax, top_ax) = plt.subplots(1, 2, figsize=(12, 4.9), dpi=110, gridspec_kw={"width_ratios": [1.6, 1.0]})
    fig.patch.set_facecolor("black")

    # The chase camera: 13 m behind, 7 m up, pitched 22 degrees down (camera axes x right, y down, z forward).
    pitch = np.radians(22.0)
    forward = np.array([np.cos(pitch), 0.0, -np.sin(pitch)])
    right = np.array([0.0, -1.0, 0.0])
    ego_SE3_chase = SE3(np.stack([right, np.cross(forward, right), forward], axis=1), [-13.0, 0.0, 7.0])
    chase = CameraModel(1600, 900, 900.0, 900.0, 799.5, 449.5)
    projection = project_points(points_ego.astype(np.float32), chase, ego_SE3_chase.inverse(), name="chase")
    seen = np.flatnonzero(projection.valid)
    seen = seen[np.argsort(-projection.depth_m[seen])]  # far first, near drawn over
    size = np.clip(60.0 / projection.depth_m[seen], 0.3, 6.0)
    chase_ax.scatter(projection.uv_px[seen, 0], projection.uv_px[seen, 1], s=size, c=colours[seen], linewidths=0)
    chase_ax.set_xlim(-0.5, 1599.5)
    chase_ax.set_ylim(899.5, -0.5)

    near = np.flatnonzero(np.hypot(points_ego[:, 0], points_ego[:, 1]) < 40.0)
    near = near[np.lexsort((points_ego[near, 2], painted[near]))]  # unpainted first, then low to high
    top_ax.scatter(points_ego[near, 1], points_ego[near, 0], s=1.0, c=colours[near], linewidths=0)
    top_ax.add_patch(plt.Rectangle((-0.95, -1.0), 1.9, 4.6, fill=False, edgecolor="white", linewidth=0.8))
    top_ax.set_xlim(40, -40)  # +y (left) to the left of the picture
    top_ax.set_ylim(-40, 40)
    top_ax.set_aspect("equal")
    for ax in (chase_ax, top_ax):
        ax.set_facecolor("black")
        ax.set_axis_off()
    counts = fusion.painted.counts()
    fig.suptitle(
        f"nuScenes keyframe, painted by six cameras: {sum(counts.values()) - counts['none']:,} points coloured, "
        f"{counts['none']:,} in dim blue seen by no camera (left: chase view, right: 40 m around the car from above, forward up)",
        color="white", fontsize=8,
    )  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, facecolor="black", pil_kwargs={"quality": 85, "optimize": True})
    plt.close(fig)


def depth_overlay_figure(fusion, decoded: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 4.6), dpi=110)
    fig.patch.set_facecolor("black")
    for row, names in enumerate(LAYOUT):
        for col, name in enumerate(names):
            ax = axes[row, col]
            ax.imshow(decoded[name], interpolation="bilinear")
            depth = fusion.depth_images[name]
            order = np.argsort(-depth.depth_m)  # near points on top
            ax.scatter(depth.cols[order], depth.rows[order], s=0.8, c=depth.depth_m[order], cmap="turbo_r", vmin=0.0, vmax=50.0, linewidths=0)
            skew_ms = fusion.matches[name].skew_ns / 1e6
            ax.set_title(f"{name}  ({len(depth):,} px, image {abs(skew_ms):.1f} ms before the sweep)", color="white", fontsize=7)
            ax.set_xlim(-0.5, 1599.5)
            ax.set_ylim(899.5, -0.5)
            ax.set_axis_off()
    fig.suptitle("Z-buffered LiDAR depth (red near, blue 50 m+), ego motion to each image time compensated", color="white", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, facecolor="black", pil_kwargs={"quality": 80, "optimize": True})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    sweep, rig, images, trajectory = load_keyframe(args.data / "nuscenes_keyframe")
    decoded = {name: image.decode() for name, image in images.items()}
    fusion = fuse_sweep(sweep, rig, images, trajectory, decoded_images=decoded)
    args.out.mkdir(parents=True, exist_ok=True)
    painted_points_figure(fusion, rig, args.out / "fusion_painted_points.jpg")
    depth_overlay_figure(fusion, decoded, args.out / "fusion_depth_overlay.jpg")
    for name in ("fusion_painted_points.jpg", "fusion_depth_overlay.jpg"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pictures of one synthetic frame: a bird's-eye view and the camera images with boxes drawn.

- **BEV** (ego frame, x up the picture): LiDAR points coloured by semantic class (ground
  grey, buildings tan, vegetation green, poles and signs blue, objects by class), ground-truth
  boxes (green, with track ids), onboard cuboids (orange), the ego (white), the planned path
  (cyan) and the driven path (magenta).
- **Cameras**: the rendered image with every ground-truth cuboid seen by the camera drawn as
  a projected wireframe (green; edges follow the lens distortion) and the onboard 2D boxes
  (orange rectangles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from av_pipeline.synthetic.camera_render import BOX_EDGES
from av_pipeline.synthetic.generator import SyntheticFrame
from av_pipeline.synthetic.materials import GROUND_IDS, SEMANTIC_ID

_SEMANTIC_COLOURS = {
    "unlabeled": (90, 90, 90),
    "road": (110, 110, 110),
    "lane_marking": (200, 200, 200),
    "curb": (140, 140, 140),
    "sidewalk": (150, 150, 150),
    "terrain": (110, 140, 90),
    "building": (200, 170, 120),
    "pole": (90, 150, 255),
    "traffic_sign": (90, 150, 255),
    "vegetation": (60, 170, 60),
    "car": (255, 80, 80),
    "van": (255, 120, 60),
    "truck": (255, 60, 160),
    "pedestrian": (255, 230, 40),
    "cyclist": (60, 230, 255),
}
_PALETTE = np.zeros((len(SEMANTIC_ID), 3), dtype=np.uint8)
for _name, _colour in _SEMANTIC_COLOURS.items():
    _PALETTE[SEMANTIC_ID[_name]] = _colour
GT_COLOUR = (40, 230, 90)
ONBOARD_COLOUR = (255, 150, 0)


def bev_image(synthetic: SyntheticFrame, size_px: int = 800, extent_m: float = 45.0):  # -> PIL.Image.Image
    """A ``size_px`` square bird's-eye view of ``+-extent_m`` around the ego."""
    from PIL import Image, ImageDraw

    frame = synthetic.frame
    lidar = frame.lidar
    ego_SE3_lidar = frame.rig.lidars[lidar.sensor]
    points = ego_SE3_lidar.transform_points(lidar.xyz)
    scale = size_px / (2.0 * extent_m)

    def to_px(xy: np.ndarray) -> np.ndarray:
        # x forward is up, y left is left
        return np.column_stack([size_px / 2 - xy[:, 1] * scale, size_px / 2 - xy[:, 0] * scale])

    canvas = np.full((size_px, size_px, 3), 16, dtype=np.uint8)
    px = np.round(to_px(points[:, :2])).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < size_px) & (px[:, 1] >= 0) & (px[:, 1] < size_px)
    order = np.argsort(points[inside, 2], kind="stable")  # higher points drawn last
    px_in, colours = px[inside][order], _PALETTE[synthetic.point_semantic[inside][order]]
    canvas[px_in[:, 1], px_in[:, 0]] = colours
    # objects and structures drawn 2 px wide so they stand out from the ground rings
    raised = ~np.isin(synthetic.point_semantic[inside][order], GROUND_IDS)
    for du, dv in ((1, 0), (0, 1), (1, 1)):
        u = np.minimum(px_in[raised, 0] + du, size_px - 1)
        v = np.minimum(px_in[raised, 1] + dv, size_px - 1)
        canvas[v, u] = colours[raised]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for path, colour in ((synthetic.driven_path_ego, (255, 60, 255)), (synthetic.planned_path_ego, (0, 230, 255))):
        draw.line([tuple(p) for p in to_px(path[:, 1:3])], fill=colour, width=2)
    ego = np.array([[4.0, 0.95], [4.0, -0.95], [-0.6, -0.95], [-0.6, 0.95]])
    draw.polygon([tuple(p) for p in to_px(ego)], outline=(255, 255, 255))
    for cuboids, colour, width in ((frame.annotations, GT_COLOUR, 2), (frame.onboard.cuboids if frame.onboard else None, ONBOARD_COLOUR, 1)):
        if cuboids is None or len(cuboids) == 0:
            continue
        corners = cuboids.corners_m()[:, :4, :2]
        for k in range(len(cuboids)):
            if np.abs(cuboids.centers_m[k, :2]).max() > extent_m:
                continue
            outline = to_px(corners[k])
            draw.polygon([tuple(p) for p in outline], outline=colour, width=width)
            front = to_px(corners[k, [0, 3]].mean(axis=0, keepdims=True))[0]
            centre = to_px(cuboids.centers_m[k : k + 1, :2])[0]
            draw.line([tuple(centre), tuple(front)], fill=colour, width=width)
            if colour == GT_COLOUR and frame.annotations.num_lidar_points[k] > 0:
                draw.text((outline[:, 0].max() + 2, outline[:, 1].min()), str(int(cuboids.track_ids[k])), fill=colour)
    return image


def camera_image(synthetic: SyntheticFrame, camera: str):  # -> PIL.Image.Image
    """The rendered image of ``camera`` with ground-truth wireframes and onboard 2D boxes."""
    from PIL import Image, ImageDraw

    frame = synthetic.frame
    rig_camera = frame.rig.cameras[camera]
    model = rig_camera.model
    image = Image.fromarray(synthetic.images_rgb[camera])
    draw = ImageDraw.Draw(image)
    truth = synthetic.truth
    visible = truth.camera_visibility[camera] > 0
    cuboids = frame.annotations
    if cuboids is not None and visible.any():
        camera_SE3_ego = rig_camera.ego_SE3_camera.inverse()
        corners = cuboids.corners_m()[visible]
        fractions = np.linspace(0.0, 1.0, 12)
        for box in corners:
            box_camera = camera_SE3_ego.transform_points(box)
            for a, b in BOX_EDGES:
                samples = box_camera[a] + fractions[:, None] * (box_camera[b] - box_camera[a])
                projection = model.project(samples)
                ok = (projection.status == 0) | (projection.status == 2)
                uv = projection.uv_px
                for i in range(len(samples) - 1):
                    if ok[i] and ok[i + 1]:
                        draw.line([tuple(uv[i]), tuple(uv[i + 1])], fill=GT_COLOUR, width=2)
    if frame.onboard is not None and camera in frame.onboard.camera_boxes:
        for box in frame.onboard.camera_boxes[camera].boxes_px:
            draw.rectangle([float(box[0]), float(box[1]), float(box[2]), float(box[3])], outline=ONBOARD_COLOUR, width=1)
    return image


def save_preview(synthetic: SyntheticFrame, out_dir: str | Path) -> list[Path]:
    """Write ``bev.png``, ``camera_<name>.jpg`` and a combined ``preview.jpg`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    bev = bev_image(synthetic)
    bev.save(out / "bev.png")
    written.append(out / "bev.png")
    cameras = {name: camera_image(synthetic, name) for name in synthetic.images_rgb}
    for name, image in cameras.items():
        image.save(out / f"camera_{name}.jpg", quality=90)
        written.append(out / f"camera_{name}.jpg")
    combined = combined_preview(bev, cameras)
    combined.save(out / "preview.jpg", quality=85)
    written.append(out / "preview.jpg")
    return written


def combined_preview(bev, cameras: dict, width_px: int = 1400):  # -> PIL.Image.Image
    """BEV on the left, the cameras stacked on the right (front first), scaled to ``width_px``."""
    from PIL import Image

    names = sorted(cameras, key=lambda n: (n != "front", n))
    column_w = width_px - bev.height
    scaled = [cameras[n].resize((column_w, int(cameras[n].height * column_w / cameras[n].width))) for n in names]
    height = max(bev.height, sum(img.height for img in scaled))
    canvas = Image.new("RGB", (width_px, height), (16, 16, 16))
    canvas.paste(bev.resize((bev.height, bev.height)), (0, 0))
    y = 0
    for img in scaled:
        canvas.paste(img, (bev.height, y))
        y += img.height
    return canvas

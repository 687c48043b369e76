"""Pictures of one frame: a bird's-eye view with boxes, and camera images with LiDAR depth
and projected cuboids. Used by the demo and, later, by mining reports.

Every picture says only what was done: :func:`save_frame_figures` builds the titles from the
frame and its :class:`~av_pipeline.frame_products.FrameProducts` (de-skewed or not, motion
compensated or not, which box sources the frame has), draws every box source it has with a
legend entry, sizes the bird's-eye view to the data (:func:`bev_extent_m`), adds a colour bar
to the depth overlays, writes times as UTC (:func:`format_time_ns`) and places box labels so
they do not overlap. Each ``save_*`` returns a :class:`FigureSummary` read back from the drawn
figure, so tests and reports can check what a picture shows without looking at pixels.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.fusion import DepthImage
from av_pipeline.fusion.cuboids import ProjectedCuboids

if TYPE_CHECKING:
    from av_pipeline.frame_products import FrameProducts
    from av_pipeline.records import Frame

#: Box sources of a frame: legend name and colour (ground truth first, drawn underneath).
GROUND_TRUTH = ("ground truth", "lime")
ONBOARD = ("onboard perception", "orange")
#: Colour of LiDAR points no camera saw (painted views), and of all points in unpainted views.
UNPAINTED_RGB = (0.25, 0.3, 0.55)
UNCOLOURED_RGB = (0.7, 0.7, 0.7)
#: Times before this (about 1973) are taken as log-relative clocks, not UTC.
_EPOCH_PLAUSIBLE_NS = 10**17
#: Font sizes (points) of titles, legends and box labels.
_TITLE_PT, _LEGEND_PT, _LABEL_PT = 9, 8, 8


@dataclass(frozen=True)
class FigureSummary:
    """What a saved figure shows, read back from the figure's artists after drawing.

    Attributes:
        path: the image file written.
        title: the title text (line breaks from wrapping replaced by spaces).
        legend: legend entries in order (``"ground truth (3)"``, ...); ``()`` without a legend.
        limits: ``(x_min, x_max, y_min, y_max)`` of the main axes in data units: metres for
            the bird's-eye view (plot x = ego -y, plot y = ego x), pixels for camera views
            (y decreasing: the image's top row is at ``y_max``... i.e. ``y_min > y_max``).
        colorbar_label: the colour bar's label, or ``None`` without one.
        labels: the box label texts drawn, in drawing order.
        label_boxes_px: ``(x0, y0, x1, y1)`` figure-pixel extent of each drawn label
            (its background box included), same order as ``labels``.
    """

    path: str
    title: str
    legend: tuple[str, ...]
    limits: tuple[float, float, float, float]
    colorbar_label: str | None
    labels: tuple[str, ...]
    label_boxes_px: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class BoxOverlay:
    """One box source drawn into a camera image.

    Attributes:
        projected: the source's cuboids projected into the camera (``K`` boxes), or ``None``
            when it has none.
        labels: ``(K,)`` label text per box.
        colour: matplotlib colour of its boxes, labels and legend entry.
        unseen: ``(K,)`` bool, boxes with no LiDAR point inside (drawn dashed, without a
            label: often occluded), or ``None`` when the counts are unknown.
    """

    projected: ProjectedCuboids | None
    labels: Sequence[str]
    colour: str
    unseen: np.ndarray | None = None


def _unseen(cuboids: Cuboids) -> np.ndarray:
    """``(K,)`` bool: boxes known to hold no LiDAR point."""
    if cuboids.num_lidar_points is None:
        return np.zeros(len(cuboids), dtype=bool)
    return np.asarray(cuboids.num_lidar_points) == 0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def format_time_ns(timestamp_ns: int) -> str:
    """A log time for people: UTC to the millisecond, or seconds on the log's own clock.

    >>> format_time_ns(1_317_027_745_964_389_445)
    '2011-09-26 09:02:25.964 UTC'
    >>> format_time_ns(2_500_000_000)
    't = 2.500 s'
    """
    timestamp_ns = int(timestamp_ns)
    if abs(timestamp_ns) < _EPOCH_PLAUSIBLE_NS:
        return f"t = {timestamp_ns / 1e9:.3f} s"
    seconds, rest_ns = divmod(timestamp_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{rest_ns // 1_000_000:03d} UTC"


def bev_extent_m(
    points_ego: np.ndarray,
    boxes: Mapping[str, tuple[Cuboids, str]],
    *,
    quantile: float = 0.99,
    margin_m: float = 5.0,
    step_m: float = 10.0,
    min_extent_m: float = 20.0,
) -> float:
    """Half-width of a square bird's-eye view around the ego that shows the data.

    It reaches every box corner and the ``quantile`` of the points' ``max(|x|, |y|)`` (so a
    few stray far returns do not shrink everything else), plus ``margin_m``, rounded up to a
    multiple of ``step_m`` and at least ``min_extent_m``.

    Args:
        points_ego: ``(N, 2+)`` points in the ego frame (m).
        boxes: name -> ``(cuboids in ego, colour)``.
    """
    reach = 0.0
    xy = np.asarray(points_ego)[:, :2]
    if len(xy):
        reach = float(np.quantile(np.abs(xy).max(axis=1), quantile))
    for cuboids, _ in boxes.values():
        if len(cuboids):
            reach = max(reach, float(np.abs(cuboids.corners_m()[:, :, :2]).max()))
    return max(min_extent_m, math.ceil((reach + margin_m) / step_m) * step_m)


def _box_outline_xy(boxes: Cuboids) -> np.ndarray:
    """``(K, 5, 2)`` closed bottom outlines of the boxes in their frame's xy plane."""
    corners = boxes.corners_m()[:, :4, :2]
    return np.concatenate([corners, corners[:, :1]], axis=1)


def _wrap(title: str, width_px: float) -> str:
    # At most about 0.6 em per character at _TITLE_PT points and 100 dpi, with a margin.
    chars = max(40, int((width_px - 24) / (_TITLE_PT * 100 / 72 * 0.6)))
    return "\n".join(textwrap.wrap(title, chars, break_on_hyphens=False))


def _summary(fig, ax, path: Path, title: str, colorbar, labels: list) -> FigureSummary:
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    boxes = []
    for text in labels:
        patch = text.get_bbox_patch()
        extent = (patch if patch is not None else text).get_window_extent(renderer)
        boxes.append((float(extent.x0), float(extent.y0), float(extent.x1), float(extent.y1)))
    return FigureSummary(
        path=str(path),
        title=title.replace("\n", " "),
        legend=tuple(t.get_text() for t in legend.get_texts()) if legend is not None else (),
        limits=(*(float(v) for v in ax.get_xlim()), *(float(v) for v in ax.get_ylim())),
        colorbar_label=colorbar.ax.get_xlabel() if colorbar is not None else None,
        labels=tuple(t.get_text() for t in labels),
        label_boxes_px=tuple(boxes),
    )


def save_bev(
    path: Path,
    points_ego: np.ndarray,
    colours: np.ndarray | None,
    boxes: Mapping[str, tuple[Cuboids, str]],
    *,
    extent_m: float | None = None,
    title: str = "",
) -> FigureSummary:
    """Bird's-eye view of ego-frame points with box sets; forward (+x) up, left (+y) left.

    Args:
        points_ego: ``(N, 3)`` points in the ego frame (m).
        colours: ``(N, 3)`` uint8 camera colours (all zero: seen by no camera), or ``None``.
        boxes: source name -> ``(cuboids in ego, matplotlib colour)``; each source gets a
            legend entry ``"name (K)"``, also when it has no box. Boxes known to hold no LiDAR
            point (``num_lidar_points == 0``) are dashed, and the entry counts them.
        extent_m: half-width of the view; default :func:`bev_extent_m` of the data.
        title: the figure title (wrapped to the figure width).
    """
    from matplotlib.lines import Line2D

    plt = _pyplot()
    extent_m = bev_extent_m(points_ego, boxes) if extent_m is None else float(extent_m)
    fig, ax = plt.subplots(figsize=(8, 8.4), dpi=100)
    ax.set_facecolor("black")
    near = (np.abs(points_ego[:, 0]) < extent_m) & (np.abs(points_ego[:, 1]) < extent_m)
    handles = []
    for name, (cuboids, edge_colour) in boxes.items():
        unseen = _unseen(cuboids)
        lines = zip(_box_outline_xy(cuboids), cuboids.centers_m, cuboids.yaws_rad, cuboids.sizes_m[:, 0], unseen)
        for outline, centre, yaw, length, dashed in lines:
            style = {"color": edge_colour, "lw": 0.8 if dashed else 1.0, "ls": "--" if dashed else "-"}
            ax.plot(-outline[:, 1], outline[:, 0], **style)
            front = centre[:2] + 0.5 * length * np.array([math.cos(yaw), math.sin(yaw)])
            ax.plot([-centre[1], -front[1]], [centre[0], front[0]], **style)  # heading
        note = f", {int(unseen.sum())} without LiDAR points: dashed" if unseen.any() else ""
        handles.append(Line2D([], [], color=edge_colour, lw=1.5, label=f"{name} ({len(cuboids)}{note})"))
    if colours is None:
        colour = np.tile(UNCOLOURED_RGB, (int(near.sum()), 1))
        handles.append(Line2D([], [], ls="", marker="o", ms=4, color=UNCOLOURED_RGB, label="LiDAR (not painted)"))
    else:
        colour = colours[near] / 255.0
        unpainted = ~colours[near].any(axis=1)
        colour[unpainted] = UNPAINTED_RGB
        if (~unpainted).any():
            handles.append(Line2D([], [], ls="", marker="o", ms=4, color=(0.9, 0.75, 0.5), label="LiDAR, camera colours"))
        if unpainted.any():
            handles.append(Line2D([], [], ls="", marker="o", ms=4, color=UNPAINTED_RGB, label="LiDAR, seen by no camera"))
    ax.scatter(-points_ego[near, 1], points_ego[near, 0], s=0.3, c=colour, linewidths=0, zorder=0)
    ax.plot([0], [0], marker="^", color="white", ms=8)
    ax.set_xlim(-extent_m, extent_m)
    ax.set_ylim(-extent_m, extent_m)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (m, right)")
    ax.set_ylabel("x (m, forward)")
    ax.legend(handles=handles, loc="upper right", fontsize=_LEGEND_PT, facecolor="white", framealpha=0.85)
    wrapped = _wrap(title, 8 * 100)
    ax.set_title(wrapped, fontsize=_TITLE_PT)
    fig.tight_layout()
    fig.canvas.draw()
    summary = _summary(fig, ax, path, wrapped, None, [])
    fig.savefig(path)
    plt.close(fig)
    return summary


def _label_extent(text, renderer):
    """Display extent of a label with its background box (the patch itself is only moved at draw time)."""
    pad_px = 0.15 * _LABEL_PT * renderer.points_to_pixels(1.0)
    return text.get_window_extent(renderer).expanded(1.0, 1.0).padded(pad_px)


def _place_labels(fig, ax, items: list[tuple[np.ndarray, str, str]], width: int, height: int) -> tuple[list, int]:
    """Draw each ``(box2d_px (4,), text, colour)`` label near its box where it overlaps no
    label drawn before (above the box, inside its top, below it, then up to two lines further
    up or down); a label with no free place is not drawn. Returns the texts drawn and how
    many were not."""
    renderer = fig.canvas.get_renderer()
    placed: list = []
    texts = []
    hidden = 0
    for box, label, colour in sorted(items, key=lambda item: (item[0][1], item[0][0])):
        x0, y0, x1, y1 = (float(v) for v in box)
        text = ax.text(
            x0, y0, label, fontsize=_LABEL_PT, color="black", ha="left", va="bottom",
            bbox={"boxstyle": "square,pad=0.15", "facecolor": colour, "edgecolor": "none", "alpha": 0.85},
        )  # fmt: skip
        extent = _label_extent(text, renderer)
        step = extent.height / abs(ax.transData.transform((0, 1))[1] - ax.transData.transform((0, 0))[1]) + 1.0
        label_width = extent.width / abs(ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0])
        x = min(max(x0, 0.0), max(width - label_width, 0.0))
        candidates = [(y0 - 1.0, "bottom"), (y0 + 1.0, "top"), (y1 + 1.0, "top")]
        # A label stacked further than a few lines from its box no longer reads as its label.
        candidates += [(y0 - 1.0 - k * step, "bottom") for k in range(1, 3)] + [(y1 + 1.0 + k * step, "top") for k in range(1, 3)]
        for y, va in candidates:
            text.set_position((x, y))
            text.set_va(va)
            bbox = _label_extent(text, renderer)
            top = ax.transData.transform((0, -0.5))[1]
            bottom = ax.transData.transform((0, height - 0.5))[1]
            inside = bbox.y0 >= bottom - 0.5 and bbox.y1 <= top + 0.5
            if inside and not any(bbox.overlaps(other) for other in placed):
                placed.append(bbox)
                texts.append(text)
                break
        else:
            text.remove()
            hidden += 1
    return texts, hidden


def save_camera_overlay(
    path: Path,
    image: np.ndarray,
    depth: DepthImage | None,
    boxes: Mapping[str, BoxOverlay],
    *,
    max_depth_m: float | None = None,
    title: str = "",
) -> FigureSummary:
    """The image with z-buffered LiDAR depth (turbo colours, near = red ... far = blue, with a
    colour bar) and the 2D boxes of projected cuboids, each source in its colour with labels.

    Args:
        image: ``(H, W, 3)`` or ``(H, W)`` uint8 image.
        depth: the camera's depth image, or ``None``.
        boxes: source name -> :class:`BoxOverlay`; each source gets a legend entry
            ``"name (n in view)"``, also with none in view. Boxes without LiDAR points are
            dashed and unlabelled.
        max_depth_m: depth of the far end of the colour scale; default: the 95th percentile
            of the depths rounded up to 10 m.
        title: the figure title (wrapped to the image width).
    """
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    plt = _pyplot()
    height, width = image.shape[:2]
    wrapped = _wrap(title, width)
    title_px = 16 * (wrapped.count("\n") + 1) + 8
    bar_px = 58
    total_px = height + title_px + bar_px
    fig = plt.figure(figsize=(width / 100, total_px / 100), dpi=100)
    ax = fig.add_axes([0, bar_px / total_px, 1, height / total_px])
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    depths = depth.depth_m if depth is not None else np.zeros(0, np.float32)
    if max_depth_m is None:
        max_depth_m = max(10.0, math.ceil(float(np.quantile(depths, 0.95)) / 10.0) * 10.0) if len(depths) else 60.0
    norm = Normalize(0.0, max_depth_m)
    colorbar = None
    if len(depths):
        scatter = ax.scatter(depth.cols, depth.rows, s=0.6, c=np.minimum(depths, max_depth_m), cmap="turbo_r", norm=norm, linewidths=0)
        bar_axes = fig.add_axes([0.25, 34 / total_px, 0.5, 8 / total_px])
        colorbar = fig.colorbar(scatter, cax=bar_axes, orientation="horizontal")
        colorbar.set_label("LiDAR depth (m)", fontsize=_LEGEND_PT, labelpad=1)
        colorbar.ax.tick_params(labelsize=7, pad=1)
    handles, items = [], []
    for name, overlay in boxes.items():
        shown = dashed = 0
        projected = overlay.projected
        if projected is not None:
            unseen = overlay.unseen if overlay.unseen is not None else np.zeros(len(projected.visible), dtype=bool)
            for k in np.flatnonzero(projected.visible):
                x0, y0, x1, y1 = projected.box2d_px[k]
                style = {"ls": "--", "lw": 0.8} if unseen[k] else {"ls": "-", "lw": 1.2}
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=overlay.colour, **style))
                if not unseen[k]:
                    items.append((projected.box2d_px[k], str(overlay.labels[k]), overlay.colour))
                shown += 1
                dashed += int(unseen[k])
        note = f", {dashed} without LiDAR points: dashed" if dashed else ""
        handles.append(Line2D([], [], color=overlay.colour, lw=1.5, label=f"{name} ({shown} in view{note})"))
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=_LEGEND_PT, framealpha=0.85)
    fig.text(0.01, 1.0 - 4 / total_px, wrapped, fontsize=_TITLE_PT, va="top")
    fig.canvas.draw()
    texts, hidden = _place_labels(fig, ax, items, width, height)
    if hidden:
        fig.text(0.99, 4 / total_px, f"{hidden} box label(s) not drawn: no free place", fontsize=7, ha="right", va="bottom")
    fig.canvas.draw()
    summary = _summary(fig, ax, path, wrapped, colorbar, texts)
    fig.savefig(path)
    plt.close(fig)
    return summary


def _box_sources(frame: Frame) -> list[tuple[str, str, Cuboids, list[str]]]:
    """``(name, colour, cuboids in ego, label texts)`` of each box source the frame has."""
    sources = []
    if frame.annotations is not None:
        truth = frame.annotations
        sources.append((*GROUND_TRUTH, truth, [str(label) for label in truth.labels]))
    if frame.onboard is not None:
        onboard = frame.onboard.cuboids
        sources.append((*ONBOARD, onboard, [f"{label} {score:.2f}" for label, score in zip(onboard.labels, onboard.scores)]))
    return sources


def _boxes_text(frame: Frame) -> str:
    missing = [what for what, value in (("ground truth", frame.annotations), ("onboard perception", frame.onboard)) if value is None]
    present = [name for name, *_ in _box_sources(frame)]
    if not present:
        return "no boxes in this frame"
    return "boxes: " + ", ".join(present) + "".join(f"; no {what}" for what in missing)


def save_frame_figures(
    folder: Path,
    frame: Frame,
    products: FrameProducts,
    decoded_images: Mapping[str, np.ndarray] | None = None,
) -> list[FigureSummary]:
    """``folder/bev.png`` and ``folder/camera_<name>.png`` per fused camera for one frame.

    Titles come from what was done: whether the sweep was de-skewed (and why not), painted,
    motion-compensated to each image time (and the image-sweep skew), and which box sources
    the frame has; times are UTC (:func:`format_time_ns`). Every box source (ground truth,
    onboard perception) is drawn in the bird's-eye view and projected into every camera,
    with a legend entry and a label per box (class; onboard: class and score); boxes known
    to hold no LiDAR point are dashed and unlabelled.

    Args:
        folder: an existing folder.
        frame: the loaded frame (boxes in ``ego``).
        products: :func:`~av_pipeline.frame_products.frame_products` of ``frame``.
        decoded_images: camera -> decoded image, to skip decoding.

    Returns:
        One :class:`FigureSummary` per file written (the bird's-eye view first).
    """
    from av_pipeline.fusion import project_cuboids

    fusion = products.fusion
    ego_SE3_lidar = frame.rig.ego_SE3_lidar(fusion.lidar)
    points = ego_SE3_lidar.transform_points(fusion.points_lidar.astype(np.float64))
    sources = _box_sources(frame)

    if fusion.deskewed:
        sweep_text = "de-skewed per point"
    else:
        reasons = [note.split(": ", 1)[1] for note in fusion.notes if note.startswith("not de-skewed: ")]
        sweep_text = "not de-skewed" + (f" ({reasons[0]})" if reasons else "")
    painted = fusion.painted
    if painted is None:
        paint_text = "not painted"
    else:
        share = float((painted.camera_index >= 0).mean()) if len(painted.camera_index) else 0.0
        paint_text = f"{100 * share:.0f}% of points painted by {len(fusion.projections)} camera(s)"
    summaries = [
        save_bev(
            Path(folder) / "bev.png",
            points,
            None if painted is None else painted.rgb,
            {name: (cuboids, colour) for name, colour, cuboids, _ in sources},
            title=(
                f"{frame.log_id}, {format_time_ns(frame.timestamp_ns)}: LiDAR {fusion.lidar} {sweep_text}, "
                f"{paint_text}; {_boxes_text(frame)}"
            ),
        )
    ]
    for camera, camera_SE3_lidar in fusion.camera_SE3_lidar.items():
        if camera not in fusion.projections:
            continue
        image = decoded_images[camera] if decoded_images is not None and camera in decoded_images else frame.images[camera].decode()
        camera_SE3_ego = camera_SE3_lidar.compose(ego_SE3_lidar.inverse())
        model = frame.rig.cameras[camera].model
        boxes: dict[str, BoxOverlay] = {}
        for name, colour, cuboids, labels in sources:
            projected = None
            if len(cuboids):
                projected = products.onboard_projections.get(camera) if name == ONBOARD[0] else None
                if projected is None:
                    projected = project_cuboids(cuboids, model, camera_SE3_ego, name=camera)
            boxes[name] = BoxOverlay(projected, labels, colour, _unseen(cuboids))
        match = fusion.matches[camera]
        skew_ms = (match.skew_ns or 0) / 1e6
        if fusion.motion_compensated:
            motion_text = f"motion-compensated to the image time (image {skew_ms:+.1f} ms from the sweep)"
        else:
            motion_text = f"not motion-compensated (no ego poses; image {skew_ms:+.1f} ms from the sweep)"
        image_time = match.image_timestamp_ns if match.image_timestamp_ns is not None else frame.timestamp_ns
        depth_text = "LiDAR depth" + (" (de-skewed sweep)" if fusion.deskewed else "")
        summaries.append(
            save_camera_overlay(
                Path(folder) / f"camera_{camera}.png",
                image,
                fusion.depth_images.get(camera),
                boxes,
                title=f"{camera}, {format_time_ns(image_time)}: {depth_text}, {motion_text}; {_boxes_text(frame)}",
            )
        )
    return summaries


__all__ = ["BoxOverlay", "FigureSummary", "bev_extent_m", "format_time_ns", "save_bev", "save_camera_overlay", "save_frame_figures"]

"""Rectify a camera image to KITTI's rectified view: level, looking forward, undistorted.

KITTI's ``label_2`` boxes are upright in the rectified camera frame (rotation ``ry`` about its
y axis only), and ``P2`` has the form ``K [I | t]`` without distortion. KITTI tools go one
step further: OpenPCDet (``boxes3d_kitti_camera_to_lidar``) and mmdet3d turn ``ry`` into a
LiDAR yaw as ``-(ry + pi / 2)``, which holds only when the rectified axes are the velodyne
axes turned the KITTI way (rectified x = velodyne -y, y = -z, z = +x). The export writes its
velodyne frame with the product's ego axes (x forward, y left, z up; see
:mod:`~av_pipeline.export.kitti`), so :func:`kitti_rect_R_camera` gives the rotation
``R0_rect`` that turns the real (pitched, rolled, slightly yawed) camera into exactly that
view, and :func:`rectify_maps` the pixel maps that resample the camera's (distorted) image
into it, with the camera's own ``K``.

The maps follow OpenCV's ``cv2.initUndistortRectifyMap(K, D, R0_rect, K, size, CV_32FC1)``
(``cv2.fisheye.initUndistortRectifyMap`` for fisheye cameras: for each output pixel ``K^-1``,
``R0_rect^-1``, distortion, ``K``) and are checked against it in the tests;
:func:`remap_bilinear` matches ``cv2.remap`` with ``INTER_LINEAR`` and a black constant border.
"""

from __future__ import annotations

import math

import numpy as np

from calibration.camera import CameraModel
from calibration.errors import CalibrationError

#: KITTI's rectified camera axes in its velodyne frame, as rows: x right = velodyne -y,
#: y down = velodyne -z, z forward = velodyne +x (``rect_R_velo``).
RECT_R_VELO = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
#: The largest angle (degrees) between a camera's optical axis and velodyne +x that
#: :func:`kitti_rect_R_camera` accepts: beyond it the rectified view would show little of the image.
MAX_RECTIFY_ANGLE_DEG = 45.0


def kitti_rect_R_camera(velo_R_camera: np.ndarray, max_angle_deg: float = MAX_RECTIFY_ANGLE_DEG) -> np.ndarray:
    """``(3, 3)`` rotation ``R0_rect`` from the camera frame to KITTI's rectified frame
    (:data:`RECT_R_VELO`: level, looking along velodyne +x).

    Args:
        velo_R_camera: ``(3, 3)`` rotation of the camera (optical frame: x right, y down,
            z forward) in the velodyne frame (x forward, y left, z up).
        max_angle_deg: the largest angle between the optical axis and velodyne +x accepted.

    Raises:
        CalibrationError: the camera looks more than ``max_angle_deg`` away from velodyne +x
            (sideways, backwards, up or down).

    >>> forward = RECT_R_VELO.T                      # a camera already in KITTI's pose
    >>> np.allclose(kitti_rect_R_camera(forward), np.eye(3))
    True
    """
    velo_R_camera = np.asarray(velo_R_camera, dtype=np.float64)
    forward = velo_R_camera[:, 2]
    cosine = float(forward[0] / max(float(np.linalg.norm(forward)), 1e-300))
    angle_deg = math.degrees(math.acos(min(1.0, max(-1.0, cosine))))
    if angle_deg > max_angle_deg:
        raise CalibrationError(
            f"camera optical axis is {angle_deg:.1f} degrees from the velodyne (ego) +x axis, more than {max_angle_deg:g}: "
            "KITTI's image_2 looks forward; pick a forward-looking camera"
        )
    return RECT_R_VELO @ velo_R_camera


def rectify_maps(model: CameraModel, rect_R_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel of every pixel of the rectified image (same size and ``K`` as ``model``).

    Args:
        model: the real camera (any distortion model).
        rect_R_camera: ``(3, 3)`` rotation from the camera frame to the rectified frame.

    Returns:
        ``(map_u, map_v)``, each ``(H, W)`` float32: where in the source image each rectified
        pixel comes from; NaN where the ray is behind the camera or outside the model's valid
        region (see :mod:`calibration.camera`).
    """
    height, width = model.height_px, model.width_px
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays_rect = np.stack([(u.ravel() - model.cx_px) / model.fx_px, (v.ravel() - model.cy_px) / model.fy_px, np.ones(u.size)], axis=1)
    rays_camera = rays_rect @ np.asarray(rect_R_camera, dtype=np.float64)  # rows: R^T ray
    z = rays_camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = rays_camera[:, :2] / z[:, None]
    valid = (z > 0) & (np.hypot(xy[:, 0], xy[:, 1]) < model.max_valid_radius)
    xy[~valid] = np.nan
    distorted = model.distort_normalized(xy)
    map_u = (model.fx_px * distorted[:, 0] + model.cx_px).reshape(height, width).astype(np.float32)
    map_v = (model.fy_px * distorted[:, 1] + model.cy_px).reshape(height, width).astype(np.float32)
    return map_u, map_v


def remap_bilinear(pixels: np.ndarray, map_u: np.ndarray, map_v: np.ndarray) -> np.ndarray:
    """Sample ``pixels`` (``(H, W)`` or ``(H, W, C)`` uint8) at ``(map_u, map_v)`` bilinearly.

    Neighbours outside the source image count as black (``cv2.BORDER_CONSTANT``); NaN map
    entries give black pixels.

    Returns:
        ``map_u.shape`` (plus channels) uint8.
    """
    source = np.asarray(pixels)
    height, width = source.shape[:2]
    image = source.reshape(height, width, -1).astype(np.float32)
    finite = np.isfinite(map_u) & np.isfinite(map_v)
    mu, mv = np.where(finite, map_u, -10.0), np.where(finite, map_v, -10.0)
    u0, v0 = np.floor(mu).astype(np.int64), np.floor(mv).astype(np.int64)
    fu, fv = (mu - u0)[..., None], (mv - v0)[..., None]
    out = np.zeros(map_u.shape + (image.shape[2],), dtype=np.float32)
    for du, dv, weight in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        uu, vv = u0 + du, v0 + dv
        inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
        out += np.where(inside[..., None], image[np.clip(vv, 0, height - 1), np.clip(uu, 0, width - 1)], 0.0) * weight
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result[..., 0] if source.ndim == 2 else result


__all__ = ["MAX_RECTIFY_ANGLE_DEG", "RECT_R_VELO", "kitti_rect_R_camera", "rectify_maps", "remap_bilinear"]

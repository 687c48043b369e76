"""Publications -> ROS messages as plain dicts (ROS 2 field names; ROS 1 variants on request).

``mcap_ros2`` serialises such dicts directly; the bag writer turns them into ``rosbags``
message objects (:func:`av_pipeline.writers.rosbag.to_typestore_message`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from av_pipeline.readers.mcap_samples import camera_model_to_info
from av_pipeline.writers.publications import (
    Boxes,
    Calibration,
    Cloud,
    Image,
    ImageBoxes,
    Path,
    Pose,
    Publication,
    StaticTransforms,
    WriterTopics,
    packed_points,
    split_ns,
    yaw_to_xyzw,
)
from calibration import SE3

#: ``sensor_msgs/PointField`` datatype codes of the two field types the writers emit.
_POINT_FIELD_CODES = {"f4": 7, "i4": 5}


def header(frame_id: str, stamp_ns: int, ros_version: int = 2) -> dict[str, Any]:
    """``std_msgs/Header`` (ROS 1 adds ``seq = 0``)."""
    sec, nanosec = split_ns(stamp_ns)
    out: dict[str, Any] = {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}
    if ros_version == 1:
        out["seq"] = 0
    return out


def _transform(parent: str, child: str, stamp_ns: int, parent_SE3_child: SE3, ros_version: int) -> dict[str, Any]:
    t = parent_SE3_child.translation
    q = parent_SE3_child.as_xyzw()
    return {
        "header": header(parent, stamp_ns, ros_version),
        "child_frame_id": child,
        "transform": {
            "translation": {"x": float(t[0]), "y": float(t[1]), "z": float(t[2])},
            "rotation": {"x": float(q[0]), "y": float(q[1]), "z": float(q[2]), "w": float(q[3])},
        },
    }


def tf_message(content: StaticTransforms | Pose, stamp_ns: int, ros_version: int = 2) -> dict[str, Any]:
    """``tf2_msgs/TFMessage`` with the static rig transforms or one pose."""
    if isinstance(content, Pose):
        triples = [(content.parent, content.child, content.parent_SE3_child)]
    else:
        triples = list(content.transforms)
    return {"transforms": [_transform(p, c, stamp_ns, pose, ros_version) for p, c, pose in triples]}


def point_cloud2(cloud: Cloud, ros_version: int = 2) -> dict[str, Any]:
    """``sensor_msgs/PointCloud2``: one row, float32 columns then ``t`` int32 (see :func:`packed_points`)."""
    fields, step, data = packed_points(cloud.sweep)
    n = cloud.sweep.num_points
    return {
        "header": header(cloud.frame_id, cloud.stamp_ns, ros_version),
        "height": 1,
        "width": n,
        "fields": [{"name": name, "offset": offset, "datatype": _POINT_FIELD_CODES[kind], "count": 1} for name, offset, kind in fields],
        "is_bigendian": False,
        "point_step": step,
        "row_step": step * n,
        "data": data,
        "is_dense": bool(np.isfinite(cloud.sweep.xyz).all()),
    }


def image_message(image: Image, ros_version: int = 2) -> tuple[str, dict[str, Any]]:
    """``("compressed", sensor_msgs/CompressedImage)`` for png/jpeg, else ``("raw", sensor_msgs/Image)``."""
    img = image.image
    head = header(image.frame_id, img.timestamp_ns, ros_version)
    if img.encoding in ("png", "jpeg"):
        return "compressed", {"header": head, "format": img.encoding, "data": img.data}
    channels = len(img.data) // (img.width_px * img.height_px)
    return "raw", {
        "header": head,
        "height": img.height_px,
        "width": img.width_px,
        "encoding": img.encoding,
        "is_bigendian": 0,
        "step": img.width_px * channels,
        "data": img.data,
    }


def camera_info(calibration: Calibration, stamp_ns: int, ros_version: int = 2) -> dict[str, Any]:
    """``sensor_msgs/CameraInfo`` (ROS 1 spells ``D, K, R, P`` in capitals)."""
    model = calibration.model
    name, d, k, r, p = camera_model_to_info(model, "ros")
    keys = ("D", "K", "R", "P") if ros_version == 1 else ("d", "k", "r", "p")
    out: dict[str, Any] = {
        "header": header(calibration.frame_id, stamp_ns, ros_version),
        "height": model.height_px,
        "width": model.width_px,
        "distortion_model": name,
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }
    out.update(dict(zip(keys, (d, k, r, p))))
    return out


def detection3d_array(boxes: Boxes, stamp_ns: int) -> dict[str, Any]:
    """``vision_msgs/Detection3DArray`` (Humble layout): one detection per box, one hypothesis each.

    ``id`` = track id as text ("" when -1), ``hypothesis.class_id`` = label,
    ``hypothesis.score`` = score, ``bbox.size`` = (length, width, height).
    """
    c = boxes.cuboids
    q = yaw_to_xyzw(c.yaws_rad)
    detections = []
    for i in range(len(c)):
        center = {
            "position": dict(zip("xyz", map(float, c.centers_m[i]))),
            "orientation": dict(zip("xyzw", map(float, q[i]))),
        }
        detections.append(
            {
                "header": header(boxes.frame_id, stamp_ns),
                "results": [
                    {
                        "hypothesis": {"class_id": str(c.labels[i]), "score": float(c.scores[i])},
                        "pose": {"pose": center, "covariance": [0.0] * 36},
                    }
                ],
                "bbox": {"center": center, "size": dict(zip("xyz", map(float, c.sizes_m[i])))},
                "id": str(int(c.track_ids[i])) if c.track_ids[i] >= 0 else "",
            }
        )
    return {"header": header(boxes.frame_id, stamp_ns), "detections": detections}


def nav_path(path: Path, ros_version: int = 2) -> dict[str, Any]:
    """``nav_msgs/Path`` in ``path.frame_id`` (the ego frame): one ``PoseStamped`` per pose with
    its own stamp, ``z = 0`` and the yaw as a rotation about +z. Values are float64 (exact)."""
    planned = path.path
    q = yaw_to_xyzw(planned.poses_ego[:, 2])
    poses = [
        {
            "header": header(path.frame_id, int(stamp_ns), ros_version),
            "pose": {
                "position": {"x": float(pose[0]), "y": float(pose[1]), "z": 0.0},
                "orientation": dict(zip("xyzw", map(float, quaternion))),
            },
        }
        for stamp_ns, pose, quaternion in zip(planned.timestamps_ns, planned.poses_ego, q)
    ]
    return {"header": header(path.frame_id, path.stamp_ns, ros_version), "poses": poses}


def detection2d_array(image_boxes: ImageBoxes) -> dict[str, Any]:
    """``vision_msgs/Detection2DArray`` (vision_msgs 4.x, Humble / Jazzy) in the camera's frame id.

    One detection per box: ``bbox.center.position`` = box centre and ``size_x, size_y`` = its
    width and height in pixels (``theta`` 0), one hypothesis with ``class_id`` = label and
    ``score``; ``id`` = track id as decimal text (``""`` when -1).
    """
    b = image_boxes.boxes
    identity = {"position": {"x": 0.0, "y": 0.0, "z": 0.0}, "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}
    detections = []
    for i in range(len(b)):
        x_min, y_min, x_max, y_max = (float(v) for v in b.boxes_px[i])
        track = int(b.track_ids[i])
        detections.append(
            {
                "header": header(image_boxes.frame_id, image_boxes.stamp_ns),
                "results": [
                    {"hypothesis": {"class_id": str(b.labels[i]), "score": float(b.scores[i])}, "pose": {"pose": identity, "covariance": [0.0] * 36}}
                ],
                "bbox": {
                    "center": {"position": {"x": (x_min + x_max) / 2.0, "y": (y_min + y_max) / 2.0}, "theta": 0.0},
                    "size_x": x_max - x_min,
                    "size_y": y_max - y_min,
                },
                "id": str(track) if track >= 0 else "",
            }
        )
    return {"header": header(image_boxes.frame_id, image_boxes.stamp_ns), "detections": detections}


def ros_publication(pub: Publication, topics: WriterTopics, ros_version: int = 2) -> tuple[str, str, dict[str, Any]]:
    """``(topic, ROS 2 type name, message dict)`` for one publication.

    Raises:
        ValueError: an unknown publication role (a bug in :func:`frame_publications`).
    """
    content = pub.content
    if pub.role in ("tf_static", "tf"):
        topic = topics.tf_static if pub.role == "tf_static" else topics.tf
        return topic, "tf2_msgs/msg/TFMessage", tf_message(content, pub.log_time_ns, ros_version)
    if pub.role == "calibration":
        message = camera_info(content, pub.log_time_ns, ros_version)
        return topics.ros_camera_info.format(name=pub.name), "sensor_msgs/msg/CameraInfo", message
    if pub.role in ("lidar", "extra_lidar"):
        topic = topics.lidar if pub.role == "lidar" else topics.extra_lidar.format(name=pub.name)
        return topic, "sensor_msgs/msg/PointCloud2", point_cloud2(content, ros_version)
    if pub.role == "image":
        kind, message = image_message(content, ros_version)
        if kind == "compressed":
            return topics.ros_compressed_image.format(name=pub.name), "sensor_msgs/msg/CompressedImage", message
        return topics.ros_raw_image.format(name=pub.name), "sensor_msgs/msg/Image", message
    if pub.role in ("onboard", "annotations"):
        topic = topics.onboard if pub.role == "onboard" else topics.annotations
        return topic, "vision_msgs/msg/Detection3DArray", detection3d_array(content, pub.log_time_ns)
    if pub.role == "planned_path":
        return topics.planned_path, "nav_msgs/msg/Path", nav_path(content, ros_version)
    if pub.role == "onboard_camera":
        return topics.onboard_camera.format(name=pub.name), "vision_msgs/msg/Detection2DArray", detection2d_array(content)
    raise ValueError(f"unknown publication role {pub.role!r}")

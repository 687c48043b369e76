"""ROS 2 message definitions (``ros2msg`` text) for the types the writers emit.

Each ``*_MSGDEF`` constant is the standard concatenated form stored in MCAP schemas and
rosbag2 metadata: the type's own fields, then every nested type after a separator line of
80 ``=`` and ``MSG: pkg/Type``. The sensor_msgs / tf2_msgs / nav_msgs texts are those of ROS 2
Humble (as ``rosbags`` generates them; ``nav_msgs/Path`` is the same in Jazzy); the vision_msgs
ones are vision_msgs 4.x (Humble and Jazzy: ``BoundingBox2D.center`` is a ``vision_msgs/Pose2D``
with a ``vision_msgs/Point2D`` position).

>>> POINTCLOUD2_MSGDEF.splitlines()[0]
'std_msgs/Header header'
>>> sorted(MSGDEFS)[0]
'nav_msgs/msg/Path'
"""

from __future__ import annotations

_SEPARATOR = "=" * 80


def _concat(main: str, *nested: tuple[str, str]) -> str:
    parts = [main.strip("\n")]
    for name, text in nested:
        parts.append(f"{_SEPARATOR}\nMSG: {name}\n{text.strip(chr(10))}")
    return "\n".join(parts) + "\n"


_TIME = ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec")
_HEADER = ("std_msgs/Header", "builtin_interfaces/Time stamp\nstring frame_id")
_POINT_FIELD = (
    "sensor_msgs/PointField",
    """
uint8 INT8=1
uint8 UINT8=2
uint8 INT16=3
uint8 UINT16=4
uint8 INT32=5
uint8 UINT32=6
uint8 FLOAT32=7
uint8 FLOAT64=8
string name
uint32 offset
uint8 datatype
uint32 count
""",
)
_ROI = ("sensor_msgs/RegionOfInterest", "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify")
_VECTOR3 = ("geometry_msgs/Vector3", "float64 x\nfloat64 y\nfloat64 z")
_POINT = ("geometry_msgs/Point", "float64 x\nfloat64 y\nfloat64 z")
_QUATERNION = ("geometry_msgs/Quaternion", "float64 x\nfloat64 y\nfloat64 z\nfloat64 w")
_TRANSFORM = ("geometry_msgs/Transform", "geometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation")
_TRANSFORM_STAMPED = ("geometry_msgs/TransformStamped", "std_msgs/Header header\nstring child_frame_id\ngeometry_msgs/Transform transform")
_POSE = ("geometry_msgs/Pose", "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation")
_POSE_WITH_COVARIANCE = ("geometry_msgs/PoseWithCovariance", "geometry_msgs/Pose pose\nfloat64[36] covariance")
_OBJECT_HYPOTHESIS = ("vision_msgs/ObjectHypothesis", "string class_id\nfloat64 score")
_OBJECT_HYPOTHESIS_WITH_POSE = (
    "vision_msgs/ObjectHypothesisWithPose",
    "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose",
)
_BOUNDING_BOX3D = ("vision_msgs/BoundingBox3D", "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size")
_POSE_STAMPED = ("geometry_msgs/PoseStamped", "std_msgs/Header header\ngeometry_msgs/Pose pose")
_POINT2D = ("vision_msgs/Point2D", "float64 x\nfloat64 y")
_POSE2D = ("vision_msgs/Pose2D", "vision_msgs/Point2D position\nfloat64 theta")
_BOUNDING_BOX2D = ("vision_msgs/BoundingBox2D", "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y")
_DETECTION2D = (
    "vision_msgs/Detection2D",
    "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox2D bbox\nstring id",
)
_DETECTION3D = (
    "vision_msgs/Detection3D",
    "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox3D bbox\nstring id",
)

POINTCLOUD2_MSGDEF = _concat(
    """
std_msgs/Header header
uint32 height
uint32 width
sensor_msgs/PointField[] fields
bool is_bigendian
uint32 point_step
uint32 row_step
uint8[] data
bool is_dense
""",
    _HEADER,
    _TIME,
    _POINT_FIELD,
)

IMAGE_MSGDEF = _concat(
    """
std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
""",
    _HEADER,
    _TIME,
)

COMPRESSED_IMAGE_MSGDEF = _concat("std_msgs/Header header\nstring format\nuint8[] data", _HEADER, _TIME)

CAMERA_INFO_MSGDEF = _concat(
    """
std_msgs/Header header
uint32 height
uint32 width
string distortion_model
float64[] d
float64[9] k
float64[9] r
float64[12] p
uint32 binning_x
uint32 binning_y
sensor_msgs/RegionOfInterest roi
""",
    _HEADER,
    _TIME,
    _ROI,
)

TF_MESSAGE_MSGDEF = _concat(
    "geometry_msgs/TransformStamped[] transforms", _TRANSFORM_STAMPED, _HEADER, _TIME, _TRANSFORM, _VECTOR3, _QUATERNION
)

DETECTION3D_ARRAY_MSGDEF = _concat(
    "std_msgs/Header header\nvision_msgs/Detection3D[] detections",
    _HEADER,
    _TIME,
    _DETECTION3D,
    _OBJECT_HYPOTHESIS_WITH_POSE,
    _OBJECT_HYPOTHESIS,
    _POSE_WITH_COVARIANCE,
    _POSE,
    _POINT,
    _QUATERNION,
    _BOUNDING_BOX3D,
    _VECTOR3,
)

DETECTION2D_ARRAY_MSGDEF = _concat(
    "std_msgs/Header header\nvision_msgs/Detection2D[] detections",
    _HEADER,
    _TIME,
    _DETECTION2D,
    _OBJECT_HYPOTHESIS_WITH_POSE,
    _OBJECT_HYPOTHESIS,
    _POSE_WITH_COVARIANCE,
    _POSE,
    _POINT,
    _QUATERNION,
    _BOUNDING_BOX2D,
    _POSE2D,
    _POINT2D,
)

PATH_MSGDEF = _concat("std_msgs/Header header\ngeometry_msgs/PoseStamped[] poses", _HEADER, _TIME, _POSE_STAMPED, _POSE, _POINT, _QUATERNION)

#: ROS 2 type name -> message definition text.
MSGDEFS: dict[str, str] = {
    "sensor_msgs/msg/PointCloud2": POINTCLOUD2_MSGDEF,
    "sensor_msgs/msg/Image": IMAGE_MSGDEF,
    "sensor_msgs/msg/CompressedImage": COMPRESSED_IMAGE_MSGDEF,
    "sensor_msgs/msg/CameraInfo": CAMERA_INFO_MSGDEF,
    "tf2_msgs/msg/TFMessage": TF_MESSAGE_MSGDEF,
    "vision_msgs/msg/Detection3DArray": DETECTION3D_ARRAY_MSGDEF,
    "vision_msgs/msg/Detection2DArray": DETECTION2D_ARRAY_MSGDEF,
    "nav_msgs/msg/Path": PATH_MSGDEF,
}

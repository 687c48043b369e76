"""``avp calib``: inspect and convert calibration files."""

from __future__ import annotations

import argparse
from pathlib import Path

from av_pipeline.cli import Command


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1242x375, got {text!r}") from None
    return width, height


class CalibCommand(Command):
    """Inspect and convert calibration files (KITTI, nuScenes, ROS, OpenCV, PJLab, rig files).

    Subcommands:
      show PATH            print the rig: cameras (size, intrinsics, distortion, valid field
                           of view), LiDARs, extrinsics to ego, and what the file holds that
                           the rig cannot represent
      convert PATH OUT     write the rig as an av-pipeline rig file (OUT.yaml / OUT.json), or
                           one camera as ROS CameraInfo / OpenCV YAML (--camera, --to)

    Examples:
      avp calib show ../shared/data/kitti/training/calib/000001.txt
      avp calib convert calib/000001.txt rig.yaml --image-size 1242x375
      avp calib convert rig.yaml front.yaml --camera front --to opencv
    """

    name = "calib"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "convert"], help="what to do")
        parser.add_argument("path", help="calibration file or directory (KITTI raw day, nuScenes tables)")
        parser.add_argument("out", nargs="?", help="output file for 'convert'")
        parser.add_argument("--format", dest="fmt", help="force the input format (default: guessed)")
        parser.add_argument("--image-size", type=_size, help="WIDTHxHEIGHT for formats that do not record it")
        parser.add_argument("--camera", help="camera to write with --to ros|opencv")
        parser.add_argument("--to", choices=["rig", "ros", "opencv"], default="rig", help="output format for 'convert'")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        import numpy as np

        from av_pipeline.errors import ConfigError
        from calibration import formats

        loaded = formats.read_any_rig(args.path, args.fmt, image_size_px=args.image_size)
        rig = loaded.rig
        if args.action == "show":
            print(f"{args.path}: {loaded.format}")
            for name in rig.camera_names:
                cam = rig.cameras[name]
                m = cam.model
                t = cam.ego_SE3_camera.translation
                fov = np.degrees(2 * np.arctan(min(m.max_valid_radius, 1e6))) if m.distortion_model != "fisheye" else np.degrees(2 * m.max_valid_angle_rad)
                print(
                    f"  camera {name}: {m.width_px}x{m.height_px} fx={m.fx_px:.2f} fy={m.fy_px:.2f} "
                    f"cx={m.cx_px:.2f} cy={m.cy_px:.2f} {m.distortion_model}{list(m.distortion) if m.distortion else ''} "
                    f"valid cone {fov:.1f} deg; ego translation_m={np.round(t, 4).tolist()}"
                )
            for name in rig.lidar_names:
                pose = rig.lidars[name]
                print(f"  lidar {name}: ego translation_m={np.round(pose.translation, 4).tolist()} yaw={np.degrees(pose.yaw_rad):.3f} deg")
            for note in loaded.unrepresented:
                print(f"  not represented: {note.field}: {note.reason}")
            return 0
        if not args.out:
            raise ConfigError("avp calib convert: an output path is required")
        out = Path(args.out)
        if args.to == "rig":
            formats.write_rig(rig, out)
        else:
            camera = args.camera or (rig.camera_names[0] if len(rig.camera_names) == 1 else None)
            if camera is None:
                raise ConfigError(f"--camera is required with --to {args.to}; cameras: {list(rig.camera_names)}")
            model = rig.camera(camera).model
            if args.to == "ros":
                formats.write_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, camera), out)
            else:
                formats.write_opencv_yaml(model, out)
        print(f"wrote {out} ({args.to}); {len(loaded.unrepresented)} note(s) on what the input held beyond the rig")
        return 0

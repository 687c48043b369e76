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


#: Output file extensions per ``--to`` format (one camera or the rig; several cameras go to a folder).
_EXTENSIONS = {"rig": (".yaml", ".yml", ".json"), "ros": (".yaml", ".yml"), "opencv": (".yaml", ".yml")}


class CalibCommand(Command):
    """Inspect and convert calibration files (KITTI, nuScenes, ROS, OpenCV, PJLab, rig files).

    Subcommands:
      show PATH            print the rig: cameras (size, intrinsics, distortion, valid field
                           of view), LiDARs, extrinsics to ego, and what the file holds that
                           the rig cannot represent or that was ignored
      convert PATH OUT     write the rig as an av-pipeline rig file (OUT.yaml / OUT.json) or as
                           KITTI raw calibration files (--to kitti, OUT a folder), or cameras as
                           ROS CameraInfo / OpenCV YAML (--to ros|opencv with --camera; several
                           cameras or --camera all: OUT is a folder of <camera>.yaml files).
                           Missing output folders are created.

    KITTI raw (a recording-day folder, a drive folder in it, or a calib_*.txt file) has two
    camera views: unrectified (K, D, R, T per camera: *_extract drives, and the drives `avp
    simulate` writes) and rectified (P_rect: *_sync drives). The default is the view of the
    drive's images (unrectified unless every drive is *_sync); --kitti-view chooses, and the
    output says which view it is and which keys it ignored.

    Examples:
      avp calib show ../shared/data/kitti/training/calib/000001.txt
      avp calib show out/sim/kitti_raw/2024_01_01 --kitti-view rectified
      avp calib convert calib/000001.txt rig.yaml --image-size 1242x375
      avp calib convert rig.yaml kitti_calib/ --to kitti
      avp calib convert rig.yaml front.yaml --camera front --to opencv
      avp calib convert rig.yaml cameras/ --camera all --to ros
    """

    name = "calib"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "convert"], help="what to do")
        parser.add_argument("path", help="calibration file or directory (KITTI raw day or drive, nuScenes tables)")
        parser.add_argument("out", nargs="?", help="output file or folder for 'convert'")
        parser.add_argument("--format", dest="fmt", help="force the input format (default: guessed)")
        parser.add_argument("--image-size", type=_size, help="WIDTHxHEIGHT for formats that do not record it")
        parser.add_argument(
            "--kitti-view",
            choices=["unrectified", "rectified"],
            help="KITTI raw cameras: unrectified (K, D, R, T) or rectified (P_rect); default: the view of the drive's images",
        )
        parser.add_argument(
            "--camera",
            action="append",
            default=[],
            help="camera to write with --to ros|opencv (repeatable; 'all' for every camera)",
        )
        parser.add_argument("--to", choices=["rig", "kitti", "ros", "opencv"], default="rig", help="output format for 'convert'")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.errors import ConfigError
        from calibration import formats

        loaded = formats.read_any_rig(args.path, args.fmt, image_size_px=args.image_size, kitti_raw_view=args.kitti_view)
        if args.kitti_view and loaded.format != "kitti_raw":
            raise ConfigError(f"--kitti-view applies to KITTI raw calibration only; {args.path} is {loaded.format}")
        if args.action == "show":
            _show(args.path, loaded)
            return 0
        if not args.out:
            raise ConfigError("avp calib convert: an output path is required")
        written = _convert(loaded.rig, Path(args.out), args.to, args.camera)
        view = next((note.reason for note in loaded.unrepresented if note.field == "camera view"), None)
        print(
            f"wrote {', '.join(str(p) for p in written)} ({args.to})"
            + (f" from the KITTI raw {view.split(':')[0]} cameras" if view else "")
            + f"; {len(loaded.unrepresented)} note(s) on what the input held beyond the rig (avp calib show lists them)"
        )
        return 0


def _show(path: str, loaded) -> None:
    import numpy as np

    rig = loaded.rig
    print(f"{path}: {loaded.format}")
    for note in loaded.unrepresented:
        if note.field == "camera view":
            other = "unrectified" if note.reason.startswith("rectified") else "rectified"
            print(f"  view: {note.reason} (--kitti-view {other} for the other)")
    for name in rig.camera_names:
        cam = rig.cameras[name]
        m = cam.model
        t = cam.ego_SE3_camera.translation
        if m.distortion_model == "fisheye":
            fov = np.degrees(2 * m.max_valid_angle_rad)
        else:
            fov = np.degrees(2 * np.arctan(min(m.max_valid_radius, 1e6)))
        print(
            f"  camera {name}: {m.width_px}x{m.height_px} fx={m.fx_px:.2f} fy={m.fy_px:.2f} "
            f"cx={m.cx_px:.2f} cy={m.cy_px:.2f} {m.distortion_model}{list(m.distortion) if m.distortion else ''} "
            f"valid cone {fov:.1f} deg; ego translation_m={np.round(t, 4).tolist()}"
        )
    for name in rig.lidar_names:
        pose = rig.lidars[name]
        print(f"  lidar {name}: ego translation_m={np.round(pose.translation, 4).tolist()} yaw={np.degrees(pose.yaw_rad):.3f} deg")
    for note in loaded.unrepresented:
        if note.field == "camera view":
            continue
        if note.reason.startswith("ignored: "):
            print(f"  ignored: {note.field}: {note.reason[len('ignored: '):]}")
        else:
            print(f"  not represented: {note.field}: {note.reason}")


def _convert(rig, out: Path, to: str, cameras: list[str]) -> list[Path]:
    """Write ``rig`` (or some of its cameras) as ``to``; return the files written."""
    from av_pipeline.errors import ConfigError
    from calibration import formats

    if to == "kitti":
        if out.suffix:
            raise ConfigError(
                f"--to kitti writes calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt into a folder; got {out}"
            )
        calib = formats.KittiRawCalib.from_rig(rig)
        formats.write_kitti_raw_calib(calib, out)
        return sorted(out.glob("calib_*.txt"))
    if to == "rig":
        _check_extension(out, to)
        out.parent.mkdir(parents=True, exist_ok=True)
        formats.write_rig(rig, out)
        return [out]
    names = _cameras(rig, cameras, to)
    if len(names) == 1 and "all" not in cameras:
        _check_extension(out, to)
        targets = {names[0]: out}
    else:
        if out.suffix or out.is_file():
            raise ConfigError(f"--to {to} with several cameras writes <camera>.yaml files into a folder; got {out}")
        targets = {name: out / f"{name}.yaml" for name in names}
    for name, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        model = rig.camera(name).model
        if to == "ros":
            formats.write_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, name), target)
        else:
            formats.write_opencv_yaml(model, target)
    return list(targets.values())


def _cameras(rig, asked: list[str], to: str) -> list[str]:
    from av_pipeline.errors import ConfigError

    available = list(rig.camera_names)
    if not asked:
        if len(available) == 1:
            return available
        raise ConfigError(f"--to {to}: name the camera with --camera (repeatable, or --camera all); cameras: {available}")
    if "all" in asked:
        return available
    unknown = [name for name in asked if name not in rig.cameras]
    if unknown:
        raise ConfigError(f"--camera: {unknown} not in the rig; cameras: {available}")
    return list(dict.fromkeys(asked))


def _check_extension(out: Path, to: str) -> None:
    from av_pipeline.errors import ConfigError

    if out.suffix.lower() not in _EXTENSIONS[to]:
        raise ConfigError(f"{out}: --to {to} writes {' or '.join(_EXTENSIONS[to])} files, got the extension {out.suffix or '(none)'!r}")

"""Regression corpus: the inputs named in issue 14, generated here (no large committed files).

Each input once crashed a reader, blew up memory, passed silently or killed the ingest job;
each test names the expected product error (file and field) or dead letter.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import AVPipelineError, LogFormatError
from av_pipeline.ingest import disambiguate_log_ids
from av_pipeline.readers import open_log
from av_pipeline.readers.pcd import MAX_PCD_DATA_BYTES, read_pcd, write_pcd
from av_pipeline.validate import FrameValidationError, validate_frame
from calibration.errors import CalibrationFileError, short_repr
from tests.fuzz.seeds import T0, nuscenes_tables, png_bytes, synthetic_frames, write_nuscenes_root


# ---------------------------------------------------------------------- helpers
def _pcd(path: Path, times: np.ndarray | None = None, data: str = "binary_compressed", n: int = 20) -> Path:
    rng = np.random.default_rng(0)
    columns = ["x", "y", "z", "intensity"]
    arrays = [rng.normal(size=n).astype(np.float32) for _ in range(4)]
    if times is not None:
        columns.append("timestamp")
        arrays.append(times)
    write_pcd(path, columns, arrays, data=data)
    return path


def _pcd_text(path: Path, header: str, body: bytes) -> Path:
    path.write_bytes(header.encode("ascii") + body)
    return path


def _kitti_split(root: Path, ids: tuple[str, ...] = ("000001",), calib_text: str | None = None) -> Path:
    split = root / "training"
    for folder in ("velodyne", "image_2", "calib"):
        (split / folder).mkdir(parents=True, exist_ok=True)
    calib_text = calib_text or (
        "P0: 700 0 600 0 0 700 180 0 0 0 1 0\nP1: 700 0 600 -380 0 700 180 0 0 0 1 0\n"
        "P2: 700 0 600 45 0 700 180 0.2 0 0 1 0.003\nP3: 700 0 600 -340 0 700 180 2.2 0 0 1 0.003\n"
        "R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27\n"
    )
    for sample in ids:
        np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32).tofile(split / "velodyne" / f"{sample}.bin")
        (split / "image_2" / f"{sample}.png").write_bytes(png_bytes(48, 16))
        (split / "calib" / f"{sample}.txt").write_text(calib_text)
    return split


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _nuscenes(root: Path, edit) -> Path:  # noqa: ANN001
    tables, files = nuscenes_tables()
    edit(tables)
    return write_nuscenes_root(root / "nusc", tables, files)


def _load_all(path: Path, reader: str | None = None) -> list:
    with open_log(path, reader) as log:
        return [log.load_frame(ref) for ref in log.list_frames()]


# ---------------------------------------------------------------------- 1. values that once failed the Parquet write
def test_pcd_time_field_of_1e30_seconds_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = _pcd(tmp_path / "far.pcd", np.full(20, 1e30))
    with pytest.raises(LogFormatError, match="per-point times") as info:
        _load_all(path)
    assert info.value.path == str(path) and info.value.field == "timestamp"


def test_kitti_sample_id_past_2100_is_a_skipped_entry_not_a_failed_split(tmp_path: Path) -> None:
    split = _kitti_split(tmp_path, ("000001", "99999999999999999999"))
    with open_log(split) as reader:
        assert [ref.index for ref in reader.list_frames()] == [0]
        (skipped,) = reader.skipped_entries()
    assert skipped.field == "sample id" and skipped.path.endswith("99999999999999999999.bin")


@pytest.mark.parametrize("value", [10**30, "1532402927647951", None, True, [1], float("nan"), float("inf"), 1e300])
def test_nuscenes_bad_timestamps_name_table_row_and_field(tmp_path: Path, value: object) -> None:
    def edit(tables: dict) -> None:
        tables["sample_data"][0]["timestamp"] = value

    root = _nuscenes(tmp_path, edit)
    with pytest.raises(LogFormatError, match="timestamp") as info:
        _load_all(root)
    assert info.value.path.endswith("sample_data.json") and info.value.field == "sample_data[0].timestamp"


@pytest.mark.parametrize("token", [["a"], {"a": 1}, 5, None])
def test_nuscenes_tokens_that_are_not_strings(tmp_path: Path, token: object) -> None:
    def edit(tables: dict) -> None:
        tables["sample_data"][1]["calibrated_sensor_token"] = token

    with pytest.raises(LogFormatError, match="expected a string") as info:
        _load_all(_nuscenes(tmp_path, edit))
    assert info.value.field == "sample_data[1].calibrated_sensor_token"


# ---------------------------------------------------------------------- 2. exceptions that were not the product's
@pytest.mark.parametrize("text", ["[" * 100_000, "[" + "9" * 5000 + "]", '[{"token": "' + "x" * 10 + '", "timestamp": 1e999}]'])
def test_nuscenes_tables_deep_nesting_and_huge_numbers(tmp_path: Path, text: str) -> None:
    root = _nuscenes(tmp_path, lambda tables: None)
    (root / "v1.0-mini" / "sample.json").write_text(text)
    with pytest.raises(LogFormatError) as info:
        _load_all(root)
    assert "sample.json" in info.value.path


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("rig.yaml", "a: " + "[" * 100_000, "nested"),
        ("rig.json", "[" * 100_000, "nested"),
        ("rig.json", '{"format": "av-pipeline-rig", "version": ' + "9" * 5000 + "}", "representable"),
        ("camera.yaml", "image_width: " + "9" * 400 + "\nimage_height: 10\n", "float64 range"),
    ],
)
def test_calibration_deep_nesting_and_huge_integers(tmp_path: Path, name: str, text: str, words: str) -> None:
    from calibration.formats import read_any_rig

    path = tmp_path / name
    path.write_text(text)
    fmt = "rig" if name.startswith("rig") else "ros_camera_info"
    with pytest.raises(CalibrationFileError, match=words) as info:
        read_any_rig(path, fmt)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("header", "body", "field", "words"),
    [
        ("FIELDS x y z i\nSIZE 4 4 4 1\nTYPE F F F U\nWIDTH 1\nHEIGHT 1\nDATA ascii\n", b"1 2 3 300\n", "DATA field 'i'", "outside uint8"),
        ("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 3 1 1\nWIDTH 1\nHEIGHT 1\nDATA ascii\n", b"1 2 3 4 5\n", "COUNT", "COUNT 1"),
        ("FIELDS x y z i\nSIZE 4 4 4 4\nTYPE F F F F\nWIDTH 1\nHEIGHT 1\nDATA ascii\n", b"1 2 3 " + b"9" * 500 + b"\n", "DATA", "longer than"),
    ],
)
def test_pcd_values_out_of_type_and_counted_coordinates(tmp_path: Path, header: str, body: bytes, field: str, words: str) -> None:
    path = _pcd_text(tmp_path / "bad.pcd", header, body)
    with pytest.raises(LogFormatError, match=words) as info:
        _load_all(path, "pcd")
    assert info.value.field == field


def test_pcd_padding_next_to_a_real_field_named_like_padding(tmp_path: Path) -> None:
    header = "FIELDS _pad1 _ x y z\nSIZE 4 4 4 4 4\nTYPE F F F F F\nWIDTH 2\nHEIGHT 1\nDATA binary\n"
    body = np.array([[7, 0, 1, 2, 3], [8, 0, 4, 5, 6]], dtype="<f4").tobytes()
    cloud = read_pcd(_pcd_text(tmp_path / "pad.pcd", header, body))
    assert list(cloud.columns) == ["_pad1", "x", "y", "z"]
    np.testing.assert_array_equal(cloud.columns["_pad1"], [7, 8])


def test_pcd_real_field_named_pad9_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "pad9.pcd"
    write_pcd(path, ["x", "y", "z", "_pad9"], [np.zeros(3, np.float32), np.ones(3, np.float32), np.arange(3, dtype=np.float32), np.full(3, 5, np.uint16)])
    (frame,) = _load_all(path)
    assert frame.lidar.columns == ("x", "y", "z", "_pad9")
    np.testing.assert_array_equal(frame.lidar.column("_pad9"), [5, 5, 5])


def test_png_decompression_bomb_is_a_product_error(tmp_path: Path) -> None:
    from av_pipeline.records import CameraImage

    bomb = _png_claiming(30000, 30000)
    image = CameraImage("front", 0, "png", bomb, 30000, 30000, source="bomb.png")
    with pytest.raises(LogFormatError, match="too large") as info:
        image.decode()
    assert info.value.path == "bomb.png" and info.value.field == "front image"
    split = _kitti_split(tmp_path)
    (split / "image_2" / "000001.png").write_bytes(bomb)
    with pytest.raises(LogFormatError, match="too large") as info:
        _load_all(split)
    assert info.value.path.endswith("000001.png")


def test_png_bomb_is_refused_when_another_library_lifted_pillows_limit(monkeypatch, tmp_path: Path) -> None:
    # importing nuscenes-devkit's map code sets Image.MAX_IMAGE_PIXELS = 400000 * 400000 for the
    # whole process (seen as a flaky failure when such a test ran first in the same worker)
    from PIL import Image

    from av_pipeline.records import CameraImage

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400000 * 400000)
    image = CameraImage("front", 0, "png", _png_claiming(30000, 30000), 30000, 30000, source="bomb.png")
    with pytest.raises(LogFormatError, match="too large to decode: the header claims 30000x30000 pixels"):
        image.decode()
    split = _kitti_split(tmp_path)
    (split / "image_2" / "000001.png").write_bytes(_png_claiming(30000, 30000))
    with pytest.raises(LogFormatError, match="too large"):
        _load_all(split)


def test_kitti_raw_timestamp_in_2300_names_the_line(tmp_path: Path) -> None:
    from av_pipeline.writers.kitti_raw import write_kitti_raw

    drive = write_kitti_raw(tmp_path, synthetic_frames(2), date="2023_11_14", drive_number=1).drive_dir
    stamps = drive / "velodyne_points" / "timestamps.txt"
    lines = stamps.read_text().splitlines()
    stamps.write_text(lines[0] + "\n2300-01-01 00:00:00.000000000\n")
    with pytest.raises(LogFormatError, match="2100") as info:
        open_log(drive).list_frames()
    assert info.value.field == "line 2"


def test_kitti_sample_named_with_a_superscript_digit(tmp_path: Path) -> None:
    split = _kitti_split(tmp_path, ("000001", "00000²"))
    with open_log(split) as reader:
        assert len(reader.list_frames()) == 1
        (skipped,) = reader.skipped_entries()
    assert skipped.field == "sample id" and "00000²" in str(skipped)


def _mcap_seed(path: Path, compression: str = "zstd") -> Path:
    from av_pipeline.writers import write_foxglove_mcap

    write_foxglove_mcap(path, synthetic_frames(3), compression=compression, chunk_size=4096)
    return path


def test_mcap_message_index_claiming_2_to_the_40_bytes(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    path = _mcap_seed(tmp_path / "drive.mcap")
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    lidar = next(cid for cid, channel in summary.channels.items() if channel.topic == "/lidar/points")
    offset = next(ci.message_index_offsets[lidar] for ci in summary.chunk_indexes if lidar in ci.message_index_offsets)
    data = bytearray(path.read_bytes())
    data[offset + 1 : offset + 9] = struct.pack("<Q", 1 << 40)
    path.write_bytes(bytes(data))
    with pytest.raises(LogFormatError, match="past the end of the file") as info:
        open_log(path).list_frames()
    assert info.value.field.startswith("message index @")


def test_scene_update_metadata_with_20_digit_track_ids_and_negative_counts() -> None:
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate

    from av_pipeline.readers.mcap_foxglove_decode import decode_scene_update

    def update(**metadata: str) -> SceneUpdate:
        msg = SceneUpdate()
        entity = msg.entities.add()
        entity.frame_id = "base_link"
        entity.id = "7"
        for key, value in metadata.items():
            kv = entity.metadata.add()
            kv.key, kv.value = key, value
        cube = entity.cubes.add()
        cube.size.x = cube.size.y = cube.size.z = 1.0
        return msg

    with pytest.raises(LogFormatError, match=r"\[-9223372036854775808, 9223372036854775807\]") as info:
        decode_scene_update(update(track_id="9" * 20), "log.mcap", "/objects")
    assert info.value.field == "/objects entities[0] metadata track_id"
    with pytest.raises(LogFormatError, match=r"\[0, 2147483647\]") as info:
        decode_scene_update(update(num_lidar_points="-5"), "log.mcap", "/objects")
    assert info.value.field == "/objects entities[0] metadata num_lidar_points"
    assert decode_scene_update(update(track_id="12", num_lidar_points="3"), "log.mcap", "/objects").cuboids.track_ids.tolist() == [12]


def test_nuscenes_tables_folder_without_sample_json(tmp_path: Path) -> None:
    from calibration.formats import read_any_rig

    root = _nuscenes(tmp_path, lambda tables: None)
    (root / "v1.0-mini" / "sample.json").unlink()
    with pytest.raises(CalibrationFileError, match="no sample.json"):
        read_any_rig(root, "nuscenes")
    with pytest.raises(LogFormatError, match="no folder with sample.json"):
        open_log(root, "nuscenes")


def test_unreadable_files_and_symlink_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from calibration.formats import read_any_rig, read_opencv_yaml

    loop = tmp_path / "loop.yaml"
    os.symlink(loop.name, loop)
    with pytest.raises(CalibrationFileError, match="cannot read") as info:
        read_any_rig(loop, "opencv_yaml")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(LogFormatError):
        open_log(loop)
    secret = tmp_path / "secret.yaml"
    secret.write_text("image_width: 1\n")
    real_read_bytes = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self == secret:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(CalibrationFileError, match="Permission denied") as info:
        read_opencv_yaml(secret)
    assert info.value.path == str(secret) and isinstance(info.value.__cause__, PermissionError)
    split = _kitti_split(tmp_path / "k")
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied", str(self))))
    with pytest.raises(LogFormatError, match="Permission denied") as info:
        _load_all(split)
    assert isinstance(info.value.__cause__, PermissionError)


def test_avp_calib_show_reports_an_unreadable_file_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from av_pipeline import cli

    loop = tmp_path / "loop.txt"
    os.symlink(loop.name, loop)
    assert cli.main(["calib", "show", str(loop)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "loop.txt" in err


# ---------------------------------------------------------------------- 3. memory blow-ups
BILLION_LAUGHS = (
    'lol0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"lol{i}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 9))
)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("opencv_yaml", "%YAML:1.0\n---\n" + BILLION_LAUGHS + "image_width: 4\nimage_height: 4\ncamera_matrix: {rows: 3, cols: 3, dt: *i, data: [1, 0, 1, 0, 1, 1, 0, 0, 1]}\n"),
        ("rig", BILLION_LAUGHS.replace("lol", "x") + "format: *i\n"),
        ("rig", "format: av-pipeline-rig\nversion: 1\ncameras:\n  " + BILLION_LAUGHS.replace("\n", "\n  ") + "front: *i\n"),
        ("ros_camera_info", BILLION_LAUGHS + "image_width: *i\n"),
    ],
)
def test_alias_bombs_give_short_messages_fast(tmp_path: Path, fmt: str, text: str) -> None:
    from calibration.formats import read_any_rig

    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert len(text) < 1200
    start = time.monotonic()
    with pytest.raises(CalibrationFileError) as info:
        read_any_rig(path, fmt)
    assert time.monotonic() - start < 5.0
    assert len(str(info.value)) < 1000


def test_short_repr_bounds_what_an_error_shows() -> None:
    bomb: list = ["lol"] * 9
    for _ in range(12):
        bomb = [bomb] * 9
    assert len(short_repr(bomb)) <= 200 and short_repr(10**5000) == "<int of about 5001 digits>"


def test_pcd_whose_header_claims_1_6_gb_is_refused_before_decompression(tmp_path: Path) -> None:
    points = 1_600_000_000 // 16
    header = f"VERSION 0.7\nFIELDS x y z i\nSIZE 4 4 4 4\nTYPE F F F F\nWIDTH {points}\nHEIGHT 1\nPOINTS {points}\nDATA binary_compressed\n"
    body = struct.pack("<II", 100, points * 16) + b"\x00" * 100
    path = _pcd_text(tmp_path / "bomb.pcd", header, body)
    with pytest.raises(LogFormatError, match="MAX_PCD_DATA_BYTES") as info:
        read_pcd(path)
    assert info.value.field == "POINTS" and points * 16 > MAX_PCD_DATA_BYTES


# ---------------------------------------------------------------------- 4. silent wrong or lost data
@pytest.mark.slow
def test_mcap_chunk_byte_flips_are_caught_by_the_crc(tmp_path: Path) -> None:
    """42 random flips inside uncompressed chunks: each frame either fails (CRC) or equals the original."""
    from mcap.reader import make_reader

    path = _mcap_seed(tmp_path / "drive.mcap", compression="none")
    with open(path, "rb") as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    original = {frame.timestamp_ns: frame for frame in _load_all(path)}
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    crc_errors = 0
    for _ in range(42):
        chunk = chunks[int(rng.integers(0, len(chunks)))]
        flipped = bytearray(data)
        flipped[chunk.chunk_start_offset + 9 + 40 + int(rng.integers(0, chunk.chunk_length - 60))] ^= int(rng.integers(1, 256))
        (tmp_path / "flipped.mcap").write_bytes(bytes(flipped))
        try:
            reader = open_log(tmp_path / "flipped.mcap")
            refs = reader.list_frames()
        except LogFormatError:
            continue
        with reader:
            for ref in refs:
                try:
                    frame = reader.load_frame(ref)
                except LogFormatError as exc:
                    crc_errors += "CRC" in str(exc)
                    continue
                source = original[ref.timestamp_ns]
                assert np.array_equal(frame.lidar.points, source.lidar.points) and frame.images["front"].data == source.images["front"].data
    assert crc_errors > 0


@pytest.mark.parametrize("filename", ["../outside.bin", "/etc/hostname", "samples/../../outside.bin"])
def test_nuscenes_filenames_outside_the_data_root_are_refused(tmp_path: Path, filename: str) -> None:
    (tmp_path / "outside.bin").write_bytes(np.zeros(20, np.float32).tobytes())

    def edit(tables: dict) -> None:
        tables["sample_data"][0]["filename"] = filename

    root = _nuscenes(tmp_path, edit)
    with open_log(root) as reader:
        ref = reader.list_frames()[0]
        with pytest.raises(LogFormatError, match="refused") as info:
            reader.load_frame(ref)
    assert info.value.field == "sample_data sd_lidar_0.filename"


def test_nuscenes_two_lidar_top_rows_in_one_sample(tmp_path: Path) -> None:
    def edit(tables: dict) -> None:
        twin = dict(tables["sample_data"][0], token="sd_lidar_twin")
        tables["sample_data"].append(twin)

    with open_log(_nuscenes(tmp_path, edit)) as reader:
        refs = reader.list_frames()
        with pytest.raises(LogFormatError, match="two key-frame LIDAR_TOP rows"):
            reader.load_frame(refs[0])
        reader.load_frame(refs[1])  # the other sample is fine


def test_nuscenes_duplicated_annotation_tokens(tmp_path: Path) -> None:
    def edit(tables: dict) -> None:
        tables["sample_annotation"].append(dict(tables["sample_annotation"][0]))

    with open_log(_nuscenes(tmp_path, edit)) as reader:
        refs = reader.list_frames()
        with pytest.raises(LogFormatError, match="counted twice") as info:
            reader.load_frame(refs[0])
        assert info.value.field == "sample_annotation ann_0"
        assert len(reader.load_frame(refs[1]).annotations) == 1


def test_negative_num_lidar_points_fail_validation() -> None:
    from dataclasses import replace

    from av_pipeline.boxes import Cuboids
    from av_pipeline.records import OnboardPerception

    frame = synthetic_frames(1)[0]
    boxes = Cuboids.from_arrays("ego", [[5.0, 1.0, 0.5]], [[4.0, 1.8, 1.5]], [0.1], ["car"], [0.9], [3], [0])
    bad = replace(frame, annotations=boxes.with_num_lidar_points(np.array([-4])))
    with pytest.raises(FrameValidationError, match="counts >= 0") as info:
        validate_frame(bad)
    assert info.value.check == "box_values" and info.value.field == "annotations num_lidar_points"
    validate_frame(replace(frame, onboard=OnboardPerception(boxes)))


@pytest.mark.parametrize(("p2", "words"), [("0 0 600 45 0 700 180 0.2 0 0 1 0.003", "positive focal"), ("700 5 600 45 0 700 180 0.2 0 0 1 0.003", "skew")])
def test_kitti_camera_with_zero_focal_or_skew_is_reported(tmp_path: Path, p2: str, words: str) -> None:
    calib = (
        "P0: 700 0 600 0 0 700 180 0 0 0 1 0\nP1: 700 0 600 -380 0 700 180 0 0 0 1 0\n"
        f"P2: {p2}\nP3: 700 0 600 -340 0 700 180 2.2 0 0 1 0.003\n"
        "R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27\n"
    )
    split = _kitti_split(tmp_path, calib_text=calib)
    with pytest.raises(CalibrationFileError, match=words) as info:
        _load_all(split)
    assert info.value.field == "P2" and info.value.path.endswith("000001.txt")


def test_kitti_raw_empty_timestamps_with_sweeps_present(tmp_path: Path) -> None:
    from av_pipeline.writers.kitti_raw import write_kitti_raw

    drive = write_kitti_raw(tmp_path, synthetic_frames(3), date="2023_11_14", drive_number=1).drive_dir
    (drive / "velodyne_points" / "timestamps.txt").write_text("")
    with open_log(drive) as reader:
        assert reader.list_frames() == []
        skipped = reader.skipped_entries()
    assert len(skipped) == 3 and all(error.field == "timestamps" for error in skipped)


def test_kitti_upper_case_bin_is_reported(tmp_path: Path) -> None:
    split = _kitti_split(tmp_path, ("000001", "000002"))
    (split / "velodyne" / "000002.bin").rename(split / "velodyne" / "000002.BIN")
    with open_log(split) as reader:
        assert len(reader.list_frames()) == 1
        (skipped,) = reader.skipped_entries()
    assert skipped.field == "file name" and skipped.path.endswith("000002.BIN")


def test_log_id_collisions_are_disambiguated() -> None:
    renamed = disambiguate_log_ids([("drive", "/d/a/drive.mcap"), ("drive", "/d/b/drive.mcap"), ("drive", "/d/a/drive.mcap"), ("x", "/d/x")])
    assert renamed == {("drive", "/d/a/drive.mcap"): "drive@a/drive.mcap", ("drive", "/d/b/drive.mcap"): "drive@b/drive.mcap"}


# ---------------------------------------------------------------------- the ingest job over good and bad logs
def _mixed_logs(root: Path) -> Path:
    logs = root / "logs"
    (logs / "a").mkdir(parents=True)
    (logs / "b").mkdir()
    _pcd(logs / "a" / "drive.pcd", np.full(20, 1_700_000_000.0))
    _pcd(logs / "b" / "drive.pcd", np.full(20, 1_700_000_000.0))  # same log id, same time as a/drive.pcd
    _pcd(Path(os.fsdecode(bytes(logs) + b"/cloud_\xff.pcd")))
    _pcd(logs / "far_future.pcd", np.full(20, 1e30))
    _mcap_seed(logs / "good.mcap")
    (logs / "garbage.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 100)
    _kitti_split(logs / "kitti", ("000001", "000002", "00000²", "99999999999999999999"))
    (logs / "kitti" / "training" / "velodyne" / "000002.bin").rename(logs / "kitti" / "training" / "velodyne" / "000002.BIN")

    def edit(tables: dict) -> None:
        tables["sample_data"][2]["timestamp"] = 10**30

    _nuscenes(logs / "nusc_root", edit)
    return logs


@pytest.mark.slow
def test_avp_ingest_over_good_and_bad_logs_always_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import pyarrow.parquet as pq

    from av_pipeline import cli

    logs = _mixed_logs(tmp_path)
    patterns = [str(logs / "**" / "*.pcd"), str(logs / "*.mcap"), str(logs / "kitti" / "training"), str(logs / "nusc_root" / "nusc")]
    out = tmp_path / "out"
    assert cli.main(["ingest", *patterns, "--out", str(out), "--json"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_listed"] == summary["frames_indexed"] + summary["frames_dead_lettered"]
    assert summary["unexpected_errors"] == 0 and summary["status"] == "ok"
    rows = pq.read_table(out / "index").to_pylist()
    letters = [json.loads(line) for path in (out / "dead_letters").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(rows) == summary["frames_indexed"] == summary["index_rows_in_files"] and len(letters) == summary["dead_letters_in_files"]
    assert all(letter["path"] and letter["field"] for letter in letters)
    keys = [(row["log_id"], row["timestamp_ns"]) for row in rows]
    assert len(keys) == len(set(keys))  # the two drive.pcd logs were disambiguated
    assert {row["log_id"] for row in rows} >= {"drive@a/drive.pcd", "drive@b/drive.pcd", "cloud_\\xff", "good", "training"}
    by_stage = {(letter["stage"], letter.get("check") or letter["field"]) for letter in letters}
    assert ("validate", "timestamp_range") in by_stage or ("list", "timestamp") in by_stage  # far_future.pcd
    assert ("list", "magic") in by_stage or any(letter["log_uri"].endswith("garbage.mcap") for letter in letters)
    assert sum(letter["stage"] == "entry" for letter in letters) == 3  # 00000², the 20-digit id, 000002.BIN
    assert any(letter["log_uri"].endswith("nusc") and "timestamp" in letter["field"] for letter in letters)

    bad_only = tmp_path / "bad_only"
    assert cli.main(["ingest", str(logs / "far_future.pcd"), str(logs / "garbage.mcap"), "--out", str(bad_only)]) == 3
    assert (bad_only / "summary.json").is_file() and list((bad_only / "index").glob("*.parquet")) and list((bad_only / "dead_letters").glob("*.jsonl"))
    assert json.loads((bad_only / "summary.json").read_text())["status"] == "too_many_dead_letters"
    capsys.readouterr()


def test_dead_letter_threshold() -> None:
    from beam_jobs.ingest import IngestSummary

    def summary(indexed: int, dead: dict[str, int], fraction: float | None) -> IngestSummary:
        listed = indexed + sum(v for k, v in dead.items() if k not in ("list", "entry"))
        return IngestSummary("out", "runner", 3, 3, listed, indexed, dead, indexed, sum(dead.values()), max_dead_letter_fraction=fraction)

    assert summary(0, {"list": 2}, None).threshold_problem().startswith("nothing was indexed")
    assert summary(9, {"validate": 1}, None).threshold_problem() is None
    assert summary(9, {"validate": 1}, 0.1).threshold_problem() is None
    assert "10.0% of the input" in summary(9, {"validate": 1}, 0.05).threshold_problem()
    assert summary(9, {"entry": 1}, 0.0).dead_letter_fraction == 0.1


def test_python_m_beam_jobs_ingest_help_and_unknown_options(capsys: pytest.CaptureFixture) -> None:
    from beam_jobs.ingest import main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--logs", "--out", "--overwrite", "--reader_option", "--max_dead_letter_fraction", "--runner", "--direct_num_workers"):
        assert option in text
    assert "exit codes:" in text and "  3  " in text
    assert main(["--logs", "x", "--out_dir", "y"]) == 2
    assert "unknown option(s) ['--out_dir', 'y']" in capsys.readouterr().err
    with pytest.raises(AVPipelineError, match="unknown option"):
        from beam_jobs.ingest import run

        run(["--logs", "x", "--outt", "y"])


# ---------------------------------------------------------------------- inputs the fuzz suite found
#: (target, AVP_FUZZ_SEED, case index) of fuzz inputs that failed before their fix.
FOUND_BY_FUZZING = [
    ("mcap_ros2", 2024, 34),  # a flipped byte in a ros2msg schema: the schema parser's NameError
    ("mcap_ros2", 2024, 38),  # ... and its InvalidFieldDefinition
    ("calib_opencv_yaml", 2024, 12),  # 'a: [[[...' x 100000: PyYAML's quadratic scanner (30 s)
    ("calib_rig_yaml", 2024, 34),  # the same in a rig file
    ("nuscenes", 7, 40),  # a 400-digit annotation translation: OverflowError
    ("nuscenes", 7, 51),  # camera_intrinsic with a non-zero lower row: CalibrationError without a path
    ("rosbag1", 7, 247),  # a flipped byte: AssertionError inside rosbags
    ("calib_nuscenes", 7, 258),  # a dict as a sensor token: unhashable
    ("mcap_foxglove", 11, 13),  # a chunk size beyond ssize_t: OverflowError inside zstandard
    ("mcap_foxglove", 13, 90),  # zeroed bytes in a summary schema record: the camera topic vanished silently
    ("mcap_ros2", 13, 290),  # the same with ROS 2 schemas
    ("nuscenes", 17, 36),  # a sample_data filename longer than the file system allows: OSError from is_file()
]  # (a corrupt ROS 1 record length, MemoryError under the fuzz cap, is covered by the fuzz run itself)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import warnings

    from tests.conftest import SHARED_DATA
    from tests.fuzz.seeds import build_seeds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_seeds(tmp_path_factory.mktemp("seeds"), SHARED_DATA if SHARED_DATA.is_dir() else None)


@pytest.mark.parametrize(("target", "seed", "index"), FOUND_BY_FUZZING)
def test_cases_the_fuzz_suite_found(seeds: dict, tmp_path: Path, target: str, seed: int, index: int) -> None:
    import signal

    from tests.fuzz.harness import PASSING, FuzzSettings, make_case
    from tests.fuzz.worker import _reference_frames, _Unreadable, run_calib_case, run_reader_case

    folder, fuzz_seed = seeds[target]
    case = make_case(target, folder, fuzz_seed, tmp_path, FuzzSettings(seed=seed), index)
    reference = _reference_frames({"kind": fuzz_seed.kind, "opener": fuzz_seed.opener, "seed_entry": str(folder / fuzz_seed.entry)})
    signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.alarm(20)  # a hang fails the test (KeyboardInterrupt) instead of blocking the suite
    try:
        with _Unreadable(case.get("unreadable")):
            result = run_reader_case(case, reference) if fuzz_seed.kind == "reader" else run_calib_case(case)
    finally:
        signal.alarm(0)
    assert result["outcome"] in PASSING, result

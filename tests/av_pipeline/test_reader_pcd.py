"""PCD reading/writing, the LZF codec and the one-frame PCD reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers.lzf import lzf_compress, lzf_decompress
from av_pipeline.readers.pcd import PcdReader, parse_pcd_header, pcd_to_sweep, read_pcd, write_pcd

PJLAB_POINTS = 101_340


@pytest.fixture(scope="module")
def pjlab_pcd(shared_data: Path) -> Path:
    return shared_data / "pjlab_lidar_camera" / "calib.pcd"


def _cloud_arrays(n: int = 500):
    rng = np.random.default_rng(0)
    xyz = rng.normal(0.0, 20.0, (n, 3)).astype(np.float32)
    xyz[3] = np.nan  # missing return, as organised clouds store it
    intensity = rng.uniform(0, 255, n).astype(np.float32)
    ring = rng.integers(0, 64, n).astype(np.uint16)
    label = rng.integers(-5, 5, n).astype(np.int8)
    t = 1_678_066_887.7 + np.sort(rng.uniform(0.0, 0.1, n))
    normal = rng.normal(size=(n, 3)).astype(np.float64)
    names = ["x", "y", "z", "intensity", "ring", "label", "normal", "timestamp"]
    arrays = [xyz[:, 0], xyz[:, 1], xyz[:, 2], intensity, ring, label, normal, t]
    return names, arrays


# ---------------------------------------------------------------------- real file
@pytest.mark.realdata
def test_pjlab_binary_compressed_header_and_columns(pjlab_pcd: Path) -> None:
    cloud = read_pcd(pjlab_pcd)
    header = cloud.header
    assert header.data == "binary_compressed"
    assert header.fields == ("x", "y", "z", "intensity", "ring", "timestamp")
    assert header.sizes == (4, 4, 4, 4, 2, 8) and header.types == ("F", "F", "F", "F", "U", "F")
    assert cloud.num_points == PJLAB_POINTS
    assert cloud.columns["ring"].dtype == np.uint16 and cloud.columns["timestamp"].dtype == np.float64
    assert set(np.unique(cloud.columns["ring"]).tolist()) == set(range(64))  # 64 rings
    assert np.isfinite(cloud.xyz()).all()


@pytest.mark.realdata
def test_pjlab_matches_open3d(pjlab_pcd: Path) -> None:
    o3d = pytest.importorskip("open3d")
    cloud = read_pcd(pjlab_pcd)
    legacy = np.asarray(o3d.io.read_point_cloud(str(pjlab_pcd)).points)
    np.testing.assert_array_equal(cloud.xyz().astype(np.float64), legacy)
    tensor = o3d.t.io.read_point_cloud(str(pjlab_pcd)).point
    np.testing.assert_array_equal(cloud.columns["ring"], tensor["ring"].numpy().ravel())
    np.testing.assert_array_equal(cloud.columns["timestamp"], tensor["timestamp"].numpy().ravel())
    np.testing.assert_array_equal(cloud.columns["intensity"], tensor["intensity"].numpy().ravel())


@pytest.mark.realdata
def test_pjlab_as_one_frame_log(pjlab_pcd: Path) -> None:
    with open_log(pjlab_pcd) as reader:
        assert isinstance(reader, PcdReader)
        refs = reader.list_frames()
        assert len(refs) == 1
        frame = reader.load_frame(refs[0])
    sweep = frame.lidar
    assert frame.key == refs[0].key == ("calib", sweep.timestamp_ns)
    assert sweep.columns == ("x", "y", "z", "intensity", "ring")
    assert sweep.num_points == PJLAB_POINTS
    times_s = read_pcd(pjlab_pcd).columns["timestamp"]
    # sweep time = the latest point (end of sweep), offsets <= 0 and reproduce every point time
    # the stored float64 seconds converted exactly (a float64 product would be off by up to 256 ns)
    assert abs(sweep.timestamp_ns - times_s.max() * 1e9) <= 256
    assert sweep.timestamp_ns == 1_678_066_887_800_777_912
    assert sweep.time_offsets_ns.max() == 0
    assert -0.11e9 < sweep.time_offsets_ns.min() < -0.09e9  # a 10 Hz sweep
    rebuilt_s = (sweep.timestamp_ns + sweep.time_offsets_ns.astype(np.int64)) / 1e9
    np.testing.assert_allclose(rebuilt_s, times_s, rtol=0, atol=1e-6)
    assert frame.world_SE3_ego is None and frame.rig.ego_SE3_lidar("lidar").allclose(frame.rig.ego_SE3_lidar())


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("data", ["binary_compressed", "binary", "ascii"])
def test_write_read_round_trip_is_bit_exact(tmp_path: Path, data: str) -> None:
    names, arrays = _cloud_arrays()
    path = tmp_path / f"cloud_{data}.pcd"
    write_pcd(path, names, arrays, data=data)
    cloud = read_pcd(path)
    assert cloud.header.data == data
    assert list(cloud.columns) == names
    for name, expected in zip(names, arrays):
        got = cloud.columns[name]
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)  # NaN == NaN here
    assert cloud.header.counts[names.index("normal")] == 3


def test_open3d_reads_our_binary_compressed(tmp_path: Path) -> None:
    o3d = pytest.importorskip("open3d")
    rng = np.random.default_rng(1)
    xyz = rng.normal(0.0, 10.0, (2000, 3)).astype(np.float32)
    xyz[::7] = xyz[0]  # repeats give the compressor back references to emit
    path = tmp_path / "ours.pcd"
    write_pcd(path, ["x", "y", "z", "intensity"], [xyz[:, 0], xyz[:, 1], xyz[:, 2], np.zeros(2000, np.float32)])
    theirs = np.asarray(o3d.io.read_point_cloud(str(path)).points)
    np.testing.assert_array_equal(theirs, xyz.astype(np.float64))


def test_sweep_columns_offsets_and_nan_kept(tmp_path: Path) -> None:
    names, arrays = _cloud_arrays()
    path = tmp_path / "cloud.pcd"
    write_pcd(path, names, arrays)
    sweep = pcd_to_sweep(read_pcd(path), sensor="top")
    assert sweep.columns == ("x", "y", "z", "intensity", "ring", "label", "normal_0", "normal_1", "normal_2")
    assert sweep.points.dtype == np.float32
    np.testing.assert_array_equal(sweep.column("ring"), arrays[4].astype(np.float32))
    np.testing.assert_array_equal(sweep.column("normal_2"), arrays[6][:, 2].astype(np.float32))
    # readers report, they do not repair: the NaN row is loaded as stored
    assert np.isnan(sweep.xyz[3]).all() and np.isfinite(np.delete(sweep.xyz, 3, axis=0)).all()
    assert sweep.time_offsets_ns[-1] == 0 and sweep.time_offsets_ns[0] < 0


def test_pcd_without_time_uses_option_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "plain.pcd"
    write_pcd(path, ["x", "y", "z"], [np.arange(3, dtype=np.float32)] * 3, data="ascii")
    reader = open_log(path, timestamp_ns=42, sensor="front")
    (ref,) = reader.list_frames()
    frame = reader.load_frame(ref)
    assert ref.timestamp_ns == frame.timestamp_ns == 42
    assert frame.lidar.sensor == "front" and frame.lidar.time_offsets_ns is None


def test_lzf_round_trip_and_corrupt_streams() -> None:
    rng = np.random.default_rng(2)
    for payload in (b"", b"a", b"abcabcabcabcabcabc" * 40, rng.integers(0, 256, 5000).astype(np.uint8).tobytes(), bytes(100_000)):
        packed = lzf_compress(payload)
        assert lzf_decompress(packed, len(payload)) == payload
    assert len(lzf_compress(bytes(100_000))) < 2_000  # long runs become back references
    packed = lzf_compress(b"abcabcabcabcabcabc" * 40)
    with pytest.raises(LogFormatError, match="truncated"):
        lzf_decompress(packed[:-1], 18 * 40)
    with pytest.raises(LogFormatError, match="expected 1000 uncompressed bytes"):
        lzf_decompress(packed, 1000)
    with pytest.raises(LogFormatError, match="before the start"):
        lzf_decompress(bytes([0x20, 0x05]), 10)  # a back reference as the first token


# ---------------------------------------------------------------------- bad input
_GOOD_HEADER = [
    "VERSION 0.7",
    "FIELDS x y z",
    "SIZE 4 4 4",
    "TYPE F F F",
    "COUNT 1 1 1",
    "WIDTH 2",
    "HEIGHT 1",
    "POINTS 2",
    "DATA binary",
]


def _header(replace: dict[str, str | None]) -> bytes:
    lines = []
    for line in _GOOD_HEADER:
        key = line.split()[0]
        if key in replace:
            if replace[key] is not None:
                lines.append(replace[key])
        else:
            lines.append(line)
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("replace", "field", "message"),
    [
        ({"FIELDS": None}, "FIELDS", "missing"),
        ({"SIZE": "SIZE 4 4"}, "SIZE", "expected 3 values"),
        ({"TYPE": "TYPE F F F F"}, "TYPE", "expected 3 values"),
        ({"COUNT": "COUNT 1 1"}, "COUNT", "expected 3 values"),
        ({"POINTS": "POINTS 3"}, "POINTS", "WIDTH \\* HEIGHT = 2 \\* 1 = 2, got 3"),
        ({"TYPE": "TYPE F F X"}, "TYPE", "expected I, U or F"),
        ({"SIZE": "SIZE 4 4 3"}, "SIZE", "expected size in"),
        ({"DATA": "DATA binary_zstd"}, "DATA", "expected one of"),
        ({"DATA": None}, "DATA", "no DATA line"),
        ({"WIDTH": "WIDTH two"}, "WIDTH", "expected integers"),
    ],
)
def test_bad_headers_name_the_key(tmp_path: Path, replace: dict, field: str, message: str) -> None:
    path = tmp_path / "bad.pcd"
    path.write_bytes(_header(replace) + np.zeros(6, np.float32).tobytes())
    with pytest.raises(LogFormatError, match=message) as info:
        read_pcd(path)
    assert info.value.field == field and info.value.path == str(path)


def test_truncated_data_is_reported(tmp_path: Path) -> None:
    xyz = [np.arange(100, dtype=np.float32)] * 3
    for data in ("binary", "binary_compressed", "ascii"):
        path = tmp_path / f"t_{data}.pcd"
        write_pcd(path, ["x", "y", "z"], xyz, data=data)
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) - 40])
        with pytest.raises(LogFormatError, match="truncated") as info:
            read_pcd(path)
        assert info.value.field in ("DATA", "lzf") and str(path) in str(info.value)


def test_binary_compressed_size_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "sizes.pcd"
    write_pcd(path, ["x", "y", "z"], [np.ones(10, np.float32)] * 3)
    header = parse_pcd_header(path.read_bytes(), path)
    blob = bytearray(path.read_bytes())
    blob[header.data_offset + 4 : header.data_offset + 8] = np.array([999], "<u4").tobytes()
    path.write_bytes(bytes(blob))
    with pytest.raises(LogFormatError, match="expected 120 uncompressed bytes"):
        read_pcd(path)


def test_ascii_line_with_wrong_value_count(tmp_path: Path) -> None:
    path = tmp_path / "ascii.pcd"
    path.write_bytes(_header({"DATA": "DATA ascii"}) + b"1 2 3\n4 5\n")
    with pytest.raises(LogFormatError, match="ascii line 2 of the data: expected 3 values"):
        read_pcd(path)


def test_pcd_without_xyz_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "noxyz.pcd"
    write_pcd(path, ["a", "b"], [np.zeros(3, np.float32), np.zeros(3, np.float32)])
    with pytest.raises(LogFormatError, match="expected x, y, z") as info:
        pcd_to_sweep(read_pcd(path))
    assert info.value.field == "FIELDS"


def test_open_log_does_not_take_a_non_pcd_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.pcd"
    path.write_bytes(b"\x89PNG not a point cloud")
    assert not PcdReader.sniff(str(path))
    with pytest.raises(LogFormatError, match="no reader recognises"):
        open_log(path)

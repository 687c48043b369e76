"""Benchmark: frames per second to list, load and validate KITTI-size frames from KITTI files
and from MCAP, and the ingest Beam job end to end.

Input: a KITTI object split of N copies of the real sample ../shared/data/kitti/training
000001 (HDL-64E sweep of 120,268 points = 1.9 MB, 1242x375 PNG of 0.7 MB, calib, 3 labelled
boxes) written to a temporary folder, and the same N frames written with
``av_pipeline.writers`` to a foxglove-protobuf MCAP and a ROS 2 MCAP (zstd chunks). Files
are in the page cache after the first pass: this measures CPU cost, not a cold disk.

Measured, as frames per second (median of --repeats where cheap):

- floor: ``np.fromfile`` of the .bin + Pillow decode of the PNG (the unavoidable work);
- list: ``open_log(uri).list_frames()``;
- load: ``reader.load_frame(ref)`` (no image decode);
- load + validate: ``frame_index_row(ref, reader.load_frame(ref))`` (adds the PNG decode
  and the NaN/shape checks): what one Beam worker does per frame;
- the whole job ``beam_jobs.ingest.run`` on the local runner, in-process and with 2 worker
  processes, wall time including Beam start-up (so a small N understates the steady rate);
- the cost of MCAP chunk CRC validation (the reader always validates): loading every frame
  of the foxglove MCAP with the product reader as shipped (``validate_crcs=True``) and with
  its chunk reader swapped for one without CRC checks, interleaved in one process; the
  ratio on / off is printed with the load average (the machine may be shared).

Run: .venv/bin/python benchmarks/ingest.py [--frames N] [--repeats R] [--skip-beam] [--skip-mcap] [--crc-only] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from av_pipeline.ingest import frame_index_row
from av_pipeline.readers import open_log

SHARED_DATA = Path(os.environ.get("AVP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
KITTI_FILES = {"velodyne": ".bin", "image_2": ".png", "calib": ".txt", "label_2": ".txt"}


def make_kitti_split(root: Path, frames: int) -> Path:
    """``root/training`` with ``frames`` copies of sample 000001 (ids 000001..N)."""
    source = SHARED_DATA / "kitti" / "training"
    split_dir = root / "training"
    for folder, ext in KITTI_FILES.items():
        (split_dir / folder).mkdir(parents=True)
        blob = (source / folder / f"000001{ext}").read_bytes()
        for k in range(1, frames + 1):
            (split_dir / folder / f"{k:06d}{ext}").write_bytes(blob)
    return split_dir


def rate(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else float("inf")


def timed(function, repeats: int) -> float:
    """Median wall seconds of ``function()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_floor(split_dir: Path, repeats: int) -> float:
    """Frames per second of the unavoidable work: read the sweep, decode the image."""
    from PIL import Image

    bins = sorted((split_dir / "velodyne").glob("*.bin"))
    pngs = sorted((split_dir / "image_2").glob("*.png"))

    def floor() -> None:
        for bin_path, png_path in zip(bins, pngs):
            np.fromfile(bin_path, dtype="<f4").reshape(-1, 4)
            with Image.open(png_path) as img:
                img.load()

    return rate(len(bins), timed(floor, repeats))


def bench_reader(uri: Path, frames: int, repeats: int) -> dict[str, float | str]:
    """List, load and load + validate rates of the reader ``open_log`` picks for ``uri``."""
    with open_log(uri) as reader:
        refs = reader.list_frames()
        assert len(refs) == frames, (uri, len(refs), frames)
        list_s = timed(reader.list_frames, repeats)
        load_s = timed(lambda: [reader.load_frame(ref) for ref in refs], repeats)
        validate_s = timed(lambda: [frame_index_row(ref, reader.load_frame(ref)) for ref in refs], repeats)
        return {"reader": reader.name, "list_fps": rate(frames, list_s), "load_fps": rate(frames, load_s), "load_validate_fps": rate(frames, validate_s)}


def write_mcaps(split_dir: Path, root: Path) -> dict[str, Path]:
    """The split's frames as a foxglove MCAP and a ROS 2 MCAP."""
    from av_pipeline.writers import write_foxglove_mcap, write_ros2_mcap

    with open_log(split_dir) as reader:
        frames = list(reader.iter_frames())
    paths = {"mcap_foxglove": root / "kitti_foxglove.mcap", "mcap_ros2": root / "kitti_ros2.mcap"}
    write_foxglove_mcap(paths["mcap_foxglove"], frames)
    write_ros2_mcap(paths["mcap_ros2"], frames)
    return paths


def bench_mcap_crc(path: Path, repeats: int) -> dict[str, float]:
    """Seconds to load every frame of ``path`` with chunk CRC validation on (as shipped) and off.

    The two variants alternate ``repeats`` times each (so drifting load hits both alike);
    medians are reported, with the ratio on / off.
    """
    from mcap.reader import SeekingReader

    def load_all(validate: bool) -> float:
        with open_log(path) as reader:
            if not validate:  # benchmark only: the product has no switch to turn CRCs off
                size = reader._file.seek(0, 2)  # noqa: SLF001
                reader._file.seek(0)  # noqa: SLF001
                unchecked = SeekingReader(reader._file, validate_crcs=False, record_size_limit=size)  # noqa: SLF001
                reader._reader = reader._source._reader = unchecked  # noqa: SLF001
            refs = reader.list_frames()
            start = time.perf_counter()
            for ref in refs:
                reader.load_frame(ref)
            return time.perf_counter() - start

    load_all(True)  # warm the page cache and the decoders
    on, off = [], []
    for _ in range(repeats):
        on.append(load_all(True))
        off.append(load_all(False))
    on_s, off_s = statistics.median(on), statistics.median(off)
    return {"crc_on_s": on_s, "crc_off_s": off_s, "ratio_on_over_off": on_s / off_s, "loadavg_1min": os.getloadavg()[0]}


def bench_job(split_dir: Path, out: Path, extra: list[str]) -> float:
    from beam_jobs.ingest import run

    start = time.perf_counter()
    summary = run(["--logs", str(split_dir), "--out", str(out), "--overwrite", *extra], show_summary=False)
    elapsed = time.perf_counter() - start
    if summary.frames_indexed != summary.frames_listed:
        raise SystemExit(f"benchmark input should be all valid, got {summary.dead_lettered} dead letters")
    return rate(summary.frames_indexed, elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="KITTI frames in the split (default 100)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-beam", action="store_true", help="only the plain functions")
    parser.add_argument("--skip-mcap", action="store_true", help="KITTI files only")
    parser.add_argument("--crc-only", action="store_true", help="only the MCAP CRC validation cost")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if not (SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin").is_file():
        print(f"KITTI sample not found under {SHARED_DATA} (set AVP_SHARED_DATA)", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING)

    results: dict[str, object] = {"frames": args.frames, "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="avp_bench_ingest_") as tmp:
        split_dir = make_kitti_split(Path(tmp), args.frames)
        sources = {"kitti": split_dir}
        if not args.skip_mcap or args.crc_only:
            sources.update(write_mcaps(split_dir, Path(tmp)))
            results["mcap_crc"] = bench_mcap_crc(sources["mcap_foxglove"], max(args.repeats, 3))
        if args.crc_only:
            _print_crc(results["mcap_crc"], args.frames)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
            return 0
        results["floor_fps"] = bench_floor(split_dir, args.repeats)
        for name, uri in sources.items():
            results[name] = bench_reader(uri, args.frames, args.repeats)
        if not args.skip_beam:
            quiet = ["--progress_interval_s=0"]
            two_workers = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
            jobs = {"job_kitti_in_process_fps": (split_dir, []), "job_kitti_2_workers_fps": (split_dir, two_workers)}
            if not args.skip_mcap:
                jobs["job_mcap_foxglove_in_process_fps"] = (sources["mcap_foxglove"], [])
            for key, (uri, extra) in jobs.items():
                results[key] = bench_job(uri, Path(tmp) / key, quiet + extra)

    print(f"KITTI-size frames (120,268 points + 1242x375 PNG + 3 boxes each), N={args.frames}, {os.cpu_count()} CPUs")
    print(f"  {'floor: np.fromfile + PNG decode':<58} {results['floor_fps']:>10.1f} frames/s")
    for name in sources:
        row = results[name]
        for key, label in (("list_fps", "list_frames"), ("load_fps", "load_frame"), ("load_validate_fps", "load_frame + validate")):
            print(f"  {name + ' (' + row['reader'] + '): ' + label:<58} {row[key]:>10.1f} frames/s")
    for key in [k for k in results if k.startswith("job_")]:
        label = key.removeprefix("job_").removesuffix("_fps").replace("_", " ")
        print(f"  {'ingest job, ' + label + ' (incl. start-up)':<58} {results[key]:>10.1f} frames/s")
    if "mcap_crc" in results:
        _print_crc(results["mcap_crc"], args.frames)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _print_crc(crc: dict[str, float], frames: int) -> None:
    print(f"MCAP (foxglove, zstd) load_frame of all {frames} frames, chunk CRC validation on vs off (same process, interleaved):")
    print(f"  CRC on (as shipped): {crc['crc_on_s']:.3f} s   CRC off: {crc['crc_off_s']:.3f} s   ratio on/off: {crc['ratio_on_over_off']:.3f}")
    print(f"  load average (1 min) during the run: {crc['loadavg_1min']:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())

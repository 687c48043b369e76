"""Throughput and memory of the main job (issue 12): frames/s end to end and peak RSS for
synthetic logs of several lengths, on each engine.

Engines: ``beam1`` (Beam in this process: FnApiRunner in_memory), ``beam2`` (Beam with 2 worker
processes: ``--direct_running_mode multi_processing --direct_num_workers 2``), ``spark2``
(the PySpark driver on ``local[2]``). Each measurement is a fresh ``python -m beam_jobs.run``
(or ``beam_jobs.spark_run``) process; peak RSS is the largest resident set of any one process
of the job (the driver and, for beam2 / spark2, each worker process, sampled every 0.2 s from
/proc), and the sum over the job's processes at the same instant (``peak_total_rss_mib``).
frames/s = frames listed / the job's own ``elapsed_s`` (pipeline start to summary written; the
interpreter start, imports and Spark's JVM start are outside it, shown as ``wall_s``).

Logs: :func:`tests.beam_jobs.scale_logs.cheap_config` (32 LiDAR beams, 1,024 firings per
turn, one 160x90 camera; the default scene and planted anomalies), generated once per size
into ``--cache`` (default ``out/scale_logs``).

Usage::

    python benchmarks/scale.py                                   # 100, 300, 1000 frames; every engine
    python benchmarks/scale.py --frames 20 40 --engines beam1 beam2 --json /tmp/scale.json   # a quick check
    python benchmarks/scale.py --json docs/data/scale_benchmark.json                         # the docs' numbers
    python benchmarks/scale.py --frames 300 --engines beam1 beam2 --threads-per-worker 1      # scaling at one core per worker

Run it on a quiet machine: the table states the load average before and after; timings taken
while other work runs do not count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from beam_jobs.common import THREADS_ENV  # noqa: E402

ENGINES = {
    "beam1": ["-m", "beam_jobs.run"],
    "beam2": ["-m", "beam_jobs.run", "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "spark2": ["-m", "beam_jobs.spark_run", "--spark_master=local[2]"],
}


def _log(frames: int, cache: Path) -> Path:
    from tests.beam_jobs.scale_logs import write_cheap_log

    folder = cache / f"scale{frames}"
    mcap = folder / f"scale{frames}.mcap"
    if not mcap.is_file():
        print(f"generating a {frames}-frame synthetic log in {folder} ...", file=sys.stderr)
        write_cheap_log(folder, frames)
    return mcap


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(engine: str, log: Path, out: Path, threads_per_worker: int = 0) -> dict:
    """One run of the main job; frames/s, peak RSS and the load average (1, 5, 15 min) when it started.

    ``threads_per_worker`` > 0 sets ``AVP_THREADS_PER_WORKER`` for the run (every engine, the
    in-process one included): each worker process then uses that many torch and numba threads,
    so worker counts compare at fixed cores per worker.
    """
    command = [sys.executable, *ENGINES[engine], f"--logs={log}", f"--out={out}", "--overwrite", "--report_top_cases=1", "--progress_interval_s=60"]
    env = dict(os.environ)
    if threads_per_worker > 0:
        env[THREADS_ENV] = str(threads_per_worker)
    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.monotonic()
    job = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak_one, peak_total, processes = 0.0, 0.0, 1
    while job.poll() is None:
        sizes = [_rss_mib(pid) for pid in _tree(job.pid)]
        peak_one, peak_total, processes = max(peak_one, max(sizes, default=0.0)), max(peak_total, sum(sizes)), max(processes, len(sizes))
        time.sleep(0.2)
    stdout, stderr = job.communicate()
    if job.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({job.returncode}):\n{stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    frames = int(summary["frames_listed"])
    return {
        "engine": engine, "frames": frames, "elapsed_s": summary["elapsed_s"], "wall_s": round(time.monotonic() - start, 1),
        "frames_per_s": round(frames / summary["elapsed_s"], 3), "peak_rss_mib": round(peak_one), "peak_total_rss_mib": round(peak_total),
        "processes": processes, "cases": summary["cases"], "frames_mined": summary["frames_mined"], "load_average_before": load_before,
        "threads_per_worker": threads_per_worker or None,
    }  # fmt: skip


def _table(rows: list[dict]) -> str:
    lines = ["| engine | frames | elapsed s | frames/s | frames/s per core | peak RSS, one process (MiB) | peak RSS, all processes (MiB) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        cores = 1 if r["engine"] == "beam1" else 2
        lines.append(
            f"| {r['engine']} | {r['frames']} | {r['elapsed_s']:.1f} | {r['frames_per_s']:.2f} | {r['frames_per_s'] / cores:.2f} | "
            f"{r['peak_rss_mib']} | {r['peak_total_rss_mib']} |"
        )
    return "\n".join(lines)


def _goals(rows: list[dict]) -> list[str]:
    by = {(r["engine"], r["frames"]): r for r in rows}
    sizes = sorted({r["frames"] for r in rows})
    notes = []
    for n in sizes:
        if ("beam1", n) in by and ("beam2", n) in by:
            notes.append(f"{n} frames: 2-worker scaling {by[('beam2', n)]['frames_per_s'] / by[('beam1', n)]['frames_per_s']:.2f}x (goal >= 1.6x)")
    for engine in ENGINES:
        mine = [by[(engine, n)] for n in sizes if (engine, n) in by]
        if len(mine) >= 2:
            growth = mine[-1]["peak_rss_mib"] / mine[-2]["peak_rss_mib"] - 1
            notes.append(f"{engine}: peak RSS {mine[-2]['frames']} -> {mine[-1]['frames']} frames: {growth:+.1%} (goal within 10%)")
    return notes


def main(argv: list[str] | None = None) -> int:
    """Run the measurements; print a table; write JSON with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--cache", type=Path, default=REPO / "out" / "scale_logs", help="where the synthetic logs are kept")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (e.g. docs/data/scale_benchmark.json)")
    parser.add_argument(
        "--threads-per-worker", type=int, default=0,
        help=f"set {THREADS_ENV} for every run (0: leave torch's default, all cores in every process)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="avp_scale_") as scratch:
        for frames in args.frames:
            log = _log(frames, args.cache)
            for engine in args.engines:
                print(f"{engine}, {frames} frames ...", file=sys.stderr)
                rows.append(measure(engine, log, Path(scratch) / f"{engine}_{frames}", args.threads_per_worker))
                print(json.dumps(rows[-1]), file=sys.stderr)
    load_after = os.getloadavg()
    print(_table(rows))
    for note in _goals(rows):
        print(note)
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}; {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"rows": rows, "goals": _goals(rows), "load_average_before": load_before, "load_average_after": load_after,
                    "cpu_count": os.cpu_count(), "python": platform.python_version(), "log": "tests.beam_jobs.scale_logs.cheap_config",
                    "threads_per_worker": args.threads_per_worker or None}  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

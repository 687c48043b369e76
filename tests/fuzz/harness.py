"""Generate seeded fuzz cases from the seeds and run them in worker processes.

Each case is a copy of a seed folder with one file mutated (:mod:`tests.fuzz.mutate`) or
made unreadable / a symlink loop / a directory / missing. Cases of one target run in one
worker process (:mod:`tests.fuzz.worker`) under a per-case timer and an address-space cap;
this process watches the worker and restarts it after a crash or a hang, so every case gets
an outcome. Two workers run at a time.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.fuzz.mutate import FS_MUTATIONS, mutate
from tests.fuzz.seeds import Seed

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Outcomes that pass: the input was refused cleanly, dead-lettered, or accepted and verified.
PASSING = ("clean_error", "dead_letter", "accepted")
#: Outcomes that fail the suite.
FAILING = ("crash", "unnamed_error", "hang", "memory", "silent_wrong")


@dataclass(frozen=True)
class FuzzSettings:
    """How much to run.

    Attributes:
        cases_per_target: mutated inputs per target.
        seed: the base of every case's random generator.
        timeout_s: per-case time limit inside the worker.
        memory_bytes: address space a worker may add after its warm-up (RLIMIT_AS).
        workers: worker processes at a time.
    """

    cases_per_target: int = 60
    seed: int = 2024
    timeout_s: float = 20.0
    memory_bytes: int = 1 << 30
    workers: int = 2


def _apply_fs_mutation(path: Path, mutation: str) -> str | None:
    """Apply a file-system mutation to ``path``; return the path to make unreadable, if any."""
    if mutation == "unreadable":
        return str(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if mutation == "symlink_loop":
        os.symlink(path.name, path)
    elif mutation == "directory":
        path.mkdir()
    elif mutation == "dangling_symlink":
        os.symlink(path.parent / "does-not-exist", path)
    return None


def make_case(target: str, seed_folder: Path, seed: Seed, out: Path, settings: FuzzSettings, index: int) -> dict[str, Any]:
    """Write case ``index`` of ``target`` (a mutated copy of the seed) under ``out``; describe it.

    The case depends only on ``(settings.seed, target, index)``, so a failing case can be
    rebuilt alone (see ``tests/fuzz/test_regressions.py::test_cases_the_fuzz_suite_found``).
    """
    rng = np.random.default_rng([settings.seed, zlib.crc32(target.encode()), index])
    files = sorted(seed.files)
    if not (out / "outside.bin").exists():  # what path-traversal mutations point at
        (out / "outside.bin").write_bytes(np.zeros(20, np.float32).tobytes())
    case_root = out / f"case_{index:05d}"
    shutil.copytree(seed_folder, case_root, symlinks=True)
    rel = files[int(rng.integers(0, len(files)))]
    target_path = case_root / rel
    family = seed.files[rel]
    unreadable = None
    if family == "dir" or rng.random() < 0.08:
        mutation = FS_MUTATIONS[int(rng.integers(0, len(FS_MUTATIONS)))]
        unreadable = _apply_fs_mutation(target_path, mutation)
    else:
        mutation, data = mutate(target_path.read_bytes(), family, rng)
        target_path.write_bytes(data)
    return {
        "id": f"{target}/{index:05d}",
        "root": str(case_root),
        "entry": str(case_root / seed.entry),
        "opener": seed.opener,
        "file": rel,
        "mutation": mutation,
        "unreadable": unreadable,
    }


def make_cases(target: str, seed_folder: Path, seed: Seed, out: Path, settings: FuzzSettings) -> list[dict[str, Any]]:
    """Write ``settings.cases_per_target`` mutated copies of the seed under ``out``; describe each."""
    return [make_case(target, seed_folder, seed, out, settings, i) for i in range(settings.cases_per_target)]


def _reader_thread(stream: Any, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def run_worker(job: dict[str, Any], job_dir: Path, startup_timeout_s: float = 300.0) -> dict[str, dict[str, Any]]:
    """Run ``job["cases"]`` in worker processes until every case has an outcome."""
    results: dict[str, dict[str, Any]] = {}
    by_id = {case["id"]: case for case in job["cases"]}
    attempt = 0
    while len(results) < len(by_id):
        attempt += 1
        remaining = [case for case in job["cases"] if case["id"] not in results]
        job_path = job_dir / f"job_{attempt}.json"
        job_path.write_text(json.dumps({**job, "cases": remaining}))
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker", str(job_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader_thread, args=(proc.stdout, lines), daemon=True).start()
        current: str | None = None
        ready = False
        while True:
            try:
                line = lines.get(timeout=(job["timeout_s"] * 2 + 10) if ready else startup_timeout_s)
            except queue.Empty:
                proc.kill()
                proc.wait()
                if current is None:
                    raise RuntimeError(f"fuzz worker for {job['target']} did not start within {startup_timeout_s} s") from None
                results[current] = {"id": current, "outcome": "hang", "message": "the worker stopped answering; killed"}
                break
            if line is None:
                code = proc.wait()
                if current is not None:
                    results[current] = {"id": current, "outcome": "crash", "message": f"the worker died (exit code {code})"}
                elif len(results) < len(by_id) and not ready:
                    raise RuntimeError(f"fuzz worker for {job['target']} exited with code {code} before it was ready")
                break
            kind, _, rest = line.partition(" ")
            if kind == "READY":
                ready = True
            elif kind == "START":
                current = rest
            elif kind == "DONE":
                result = json.loads(rest)
                results[result["id"]] = result
                current = None
            elif kind == "PEAK":
                results.setdefault("__peak__", {"outcome": "meta", "peak_rss_bytes": 0})
                results["__peak__"]["peak_rss_bytes"] = max(results["__peak__"]["peak_rss_bytes"], int(rest))
        if attempt > len(by_id) + 2:
            raise RuntimeError("fuzz worker restarted more often than there are cases")
    for case_id, case in by_id.items():
        results[case_id] = {**results[case_id], "file": case["file"], "mutation": case["mutation"]}
    return results


def run_target(target: str, seed_folder: Path, seed: Seed, work: Path, settings: FuzzSettings) -> dict[str, Any]:
    """Make and run one target's cases; return its counts and the failing cases."""
    out = work / target
    out.mkdir(parents=True)
    cases = make_cases(target, seed_folder, seed, out, settings)
    job = {
        "target": target,
        "kind": seed.kind,
        "opener": seed.opener,
        "seed_entry": str(seed_folder / seed.entry),
        "timeout_s": settings.timeout_s,
        "memory_bytes": settings.memory_bytes,
        "cases": cases,
    }
    results = run_worker(job, out)
    peak = results.pop("__peak__", {}).get("peak_rss_bytes", 0)
    counts = collections.Counter(result["outcome"] for result in results.values())
    failures = [result for result in results.values() if result["outcome"] in FAILING]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "target": target,
        "inputs": len(results),
        "counts": dict(counts),
        "failures": failures,
        "max_rss_growth_bytes": max((r.get("rss_growth_bytes", 0) for r in results.values()), default=0),
        "peak_rss_bytes": peak,
        "mutations": dict(collections.Counter(r["mutation"] for r in results.values())),
        "examples": {
            outcome: [f"{r['mutation']} {r['file']}: {r.get('message', r)}"[:300] for r in results.values() if r["outcome"] == outcome][:4]
            for outcome in PASSING
        },
    }


def run_all(seeds: dict[str, tuple[Path, Seed]], work: Path, settings: FuzzSettings, targets: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run every target (``settings.workers`` at a time); target -> :func:`run_target` result."""
    names = [name for name in seeds if targets is None or name in targets]
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        futures = {name: pool.submit(run_target, name, seeds[name][0], seeds[name][1], work, settings) for name in names}
        return {name: future.result() for name, future in futures.items()}


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Per-target counts as a text table (for the test log and the closing note)."""
    header = f"{'target':24} {'inputs':>6} {'clean err':>9} {'dead let':>8} {'accepted':>8} {'failures':>8} {'max dRSS MB':>11}"
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        c = result["counts"]
        lines.append(
            f"{name:24} {result['inputs']:6d} {c.get('clean_error', 0):9d} {c.get('dead_letter', 0):8d} {c.get('accepted', 0):8d} "
            f"{len(result['failures']):8d} {result['max_rss_growth_bytes'] / 2**20:11.1f}"
        )
    total = collections.Counter()
    for result in results.values():
        total.update(result["counts"])
    lines.append(
        f"{'total':24} {sum(r['inputs'] for r in results.values()):6d} {total.get('clean_error', 0):9d} {total.get('dead_letter', 0):8d} "
        f"{total.get('accepted', 0):8d} {sum(len(r['failures']) for r in results.values()):8d}"
    )
    return "\n".join(lines)

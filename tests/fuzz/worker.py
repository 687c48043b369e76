"""``python -m tests.fuzz.worker JOB.json``: run fuzz cases one at a time under a time and memory limit.

The harness (:mod:`tests.fuzz.harness`) starts one worker per batch. The worker imports
everything and opens the seed once (so numba kernels are compiled and the seed's frames are
known), then caps its address space at its size after warm-up plus the job's
``memory_bytes`` (``RLIMIT_AS``), and runs each case with a ``SIGALRM`` timer. It prints::

    READY <peak rss bytes>
    START <case id>
    DONE {"id": ..., "outcome": ..., ...}

An outcome is one of ``clean_error`` (a product error naming the input), ``dead_letter``
(the log listed but frames or entries were dead-lettered, as ingest would), ``accepted``
(every frame loaded, validated and verified; for calibration: the rig round-trips through
the rig file format), or a failure: ``crash`` (any other exception), ``unnamed_error`` (a
product error that names neither file nor field), ``hang`` (timer), ``memory``
(``MemoryError`` under the cap) and ``silent_wrong`` (an MCAP frame that differs from the
seed's frame with the same key: corrupted data that passed). A worker that dies or stops
answering is handled by the harness (``crash`` / ``hang`` for the case it was on).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np


class CaseTimeout(BaseException):
    """Raised by the timer; a BaseException so product code's ``except Exception`` cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Unreadable:
    """Make one path raise PermissionError on open, as for a file without read permission
    (the suite may run as root, where chmod 000 does not stop reads)."""

    def __init__(self, path: str | None) -> None:
        self.path = os.path.realpath(path) if path else None
        self._saved: tuple = ()

    def _denied(self, file: Any) -> bool:
        try:
            return self.path is not None and isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(file)) == self.path
        except (TypeError, ValueError, OSError):
            return False

    def __enter__(self) -> None:
        if self.path is None:
            return
        real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

        def guarded(opener):  # noqa: ANN001, ANN202
            def wrapper(file, *args, **kwargs):  # noqa: ANN001, ANN202
                if self._denied(file):
                    raise PermissionError(13, "Permission denied", os.fsdecode(file))
                return opener(file, *args, **kwargs)

            return wrapper

        self._saved = (real_open, real_io_open, real_os_open)
        builtins.open, io.open, os.open = guarded(real_open), guarded(real_io_open), guarded(real_os_open)

    def __exit__(self, *exc: object) -> None:
        if self._saved:
            builtins.open, io.open, os.open = self._saved


def _names_input(error: BaseException, case_root: str) -> bool:
    path = getattr(error, "path", None)
    text = str(error)
    return bool(path and path != "None") or case_root in text


def _error_outcome(error: BaseException, case_root: str) -> dict[str, Any]:
    from calibration.errors import MAX_MESSAGE_CHARS

    text = str(error)
    outcome = "clean_error" if _names_input(error, case_root) else "unnamed_error"
    if len(text) > MAX_MESSAGE_CHARS + 100:
        outcome = "crash"
    return {"outcome": outcome, "error": type(error).__name__, "message": text[:300], "field": getattr(error, "field", None)}


def _frames_equal(a: Any, b: Any) -> str | None:
    """Why two frames with one key differ, or None."""
    if sorted(a.lidars) != sorted(b.lidars) or sorted(a.images) != sorted(b.images):
        return f"sensors {sorted(a.lidars)} {sorted(a.images)} vs {sorted(b.lidars)} {sorted(b.images)}"
    for name in a.lidars:
        pa, pb = a.lidars[name].points, b.lidars[name].points
        if pa.shape != pb.shape or not np.array_equal(pa, pb, equal_nan=True):
            return f"lidar {name} points differ"
    for name in a.images:
        if a.images[name].data != b.images[name].data:
            return f"camera {name} image bytes differ"
    if (a.world_SE3_ego is None) != (b.world_SE3_ego is None):
        return "pose presence differs"
    if a.world_SE3_ego is not None and not np.allclose(a.world_SE3_ego.as_matrix(), b.world_SE3_ego.as_matrix(), atol=1e-9):
        return "pose differs"
    return None


def run_reader_case(case: dict[str, Any], reference: dict[tuple, Any] | None) -> dict[str, Any]:
    from av_pipeline.errors import AVPipelineError
    from av_pipeline.ingest import frame_index_row
    from av_pipeline.readers import open_log
    from av_pipeline.validate import FrameValidationError, split_out_of_order

    case_root = case["root"]
    try:
        reader = open_log(case["entry"], case["opener"])
    except AVPipelineError as exc:
        return _error_outcome(exc, case_root)
    with reader:
        try:
            refs = reader.list_frames()
            skipped = reader.skipped_entries()
        except AVPipelineError as exc:
            return _error_outcome(exc, case_root)
        accepted = dead = 0
        for error in skipped:
            if not _names_input(error, case_root):
                return _error_outcome(error, case_root)
        refs, out_of_order = split_out_of_order(refs)  # as ingest does: those are dead letters
        dead += len(out_of_order)
        for ref in refs[:20]:
            try:
                frame = reader.load_frame(ref)
            except AVPipelineError as exc:
                result = _error_outcome(exc, case_root)
                if result["outcome"] != "clean_error":
                    return result
                dead += 1
                continue
            try:
                frame_index_row(ref, frame)
            except FrameValidationError:
                dead += 1
                continue
            if reference is not None:
                original = reference.get(ref.key)
                why = "no frame with this key in the seed" if original is None else _frames_equal(frame, original)
                if why is not None:
                    return {"outcome": "silent_wrong", "message": f"frame {ref.key}: {why}"}
            accepted += 1
    outcome = "dead_letter" if dead or skipped else "accepted"
    return {"outcome": outcome, "frames": len(refs), "accepted_frames": accepted, "dead_frames": dead, "skipped_entries": len(skipped)}


def run_calib_case(case: dict[str, Any]) -> dict[str, Any]:
    from calibration.errors import AVPipelineError
    from calibration.formats import format_rig, parse_rig, read_any_rig

    try:
        result = read_any_rig(case["entry"], case["opener"])
    except AVPipelineError as exc:
        return _error_outcome(exc, case["root"])
    back = parse_rig(format_rig(result.rig)).rig
    for name, camera in result.rig.cameras.items():
        other = back.cameras[name]
        if camera.model != other.model or not np.allclose(camera.ego_SE3_camera.as_matrix(), other.ego_SE3_camera.as_matrix(), atol=1e-12):
            return {"outcome": "silent_wrong", "message": f"camera {name} does not round-trip through the rig format"}
    for name, pose in result.rig.lidars.items():
        if not np.allclose(pose.as_matrix(), back.lidars[name].as_matrix(), atol=1e-12):
            return {"outcome": "silent_wrong", "message": f"lidar {name} does not round-trip through the rig format"}
    return {"outcome": "accepted", "cameras": len(result.rig.cameras), "lidars": len(result.rig.lidars)}


def _reference_frames(job: dict[str, Any]) -> dict[tuple, Any] | None:
    """The seed's frames by key (warms up imports and kernels; used to verify MCAP frames)."""
    from av_pipeline.readers import open_log
    from calibration.formats import read_any_rig

    if job["kind"] != "reader":
        read_any_rig(job["seed_entry"], job["opener"])
        return None
    with open_log(job["seed_entry"], job["opener"]) as reader:
        frames = {ref.key: reader.load_frame(ref) for ref in reader.list_frames()}
    return frames if job["opener"] == "mcap" else None


def main(job_path: str) -> int:
    import warnings

    warnings.simplefilter("ignore")
    job = json.loads(Path(job_path).read_text())
    reference = _reference_frames(job)
    limit = _vm_size_bytes() + int(job["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    print("READY", _peak_rss_bytes(), flush=True)
    for case in job["cases"]:
        print("START", case["id"], flush=True)
        rss_before = _peak_rss_bytes()
        try:
            signal.setitimer(signal.ITIMER_REAL, float(job["timeout_s"]))
            with _Unreadable(case.get("unreadable")):
                result = run_reader_case(case, reference) if job["kind"] == "reader" else run_calib_case(case)
        except CaseTimeout:
            result = {"outcome": "hang", "message": f"no answer within {job['timeout_s']} s"}
        except MemoryError:
            result = {"outcome": "memory", "message": "MemoryError under the address-space cap"}
        except Exception as exc:  # noqa: BLE001 - what the suite is here to find
            frames = traceback.extract_tb(exc.__traceback__)
            where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
            result = {"outcome": "crash", "error": type(exc).__name__, "message": f"{str(exc)[:300]} (at {where})"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
        result["id"] = case["id"]
        result["rss_growth_bytes"] = _peak_rss_bytes() - rss_before
        print("DONE", json.dumps(result, default=str), flush=True)
    print("PEAK", _peak_rss_bytes(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""The synthetic log that comes with the package: the main job's default input.

The repository does not carry the log's 21 MB of MCAP. It carries what makes it
(:data:`BUNDLED_CONFIG`) and the SHA-256 and size of every file the generator writes
(``synthetic_default.sha256.json`` beside where the log goes). :func:`bundled_log` generates
the log on first use (about 15 s on 2 cores), checks it against those digests and returns the
paths; later calls find it in place. ``make demo`` and ``make test`` generate it during set-up.

Where it goes: ``av_pipeline/data/synthetic/`` in a source checkout (the paths the docs quote),
or, when the installed package's folder is read-only, ``$AVP_DATA_DIR/synthetic`` (default
``~/.cache/av-pipeline/synthetic``).

>>> from av_pipeline.synthetic import bundled_log
>>> log = bundled_log()
>>> log.mcap.name, log.anomalies.name
('synthetic_default.mcap', 'synthetic_default.anomalies.json')
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from av_pipeline.errors import LogFormatError
from av_pipeline.synthetic.config import SimulationConfig

logger = logging.getLogger(__name__)

#: Folder of the bundled log inside the package (source checkout or writable install).
BUNDLED_LOG_DIR = Path(__file__).resolve().parents[1] / "data" / "synthetic"
#: The configuration that makes it.
BUNDLED_CONFIG = SimulationConfig(frames=20, seed=0, log_id="synthetic_default")
#: File name of the digests, in :data:`BUNDLED_LOG_DIR`.
DIGESTS_NAME = f"{BUNDLED_CONFIG.log_id}.sha256.json"
#: Suffixes of the files the generator writes, by :class:`BundledLog` field.
_SUFFIXES = {"mcap": "mcap", "anomalies": "anomalies.json", "labels": "labels.json", "planned_path": "planned_path.json", "meta": "meta.json", "rig": "rig.yaml"}


@dataclass(frozen=True)
class BundledLog:
    """Paths of the bundled log's files.

    Attributes:
        mcap: the drive log (open it with ``open_log``).
        anomalies, labels, planned_path, meta, rig: the side files (docs/synthetic.md).
    """

    mcap: Path
    anomalies: Path
    labels: Path
    planned_path: Path
    meta: Path
    rig: Path


def _paths(folder: Path) -> BundledLog:
    stem = BUNDLED_CONFIG.log_id
    return BundledLog(**{field: folder / f"{stem}.{suffix}" for field, suffix in _SUFFIXES.items()})


def _recorded_files(digests_file: Path) -> dict:
    """The raw ``files`` record of ``digests_file``."""
    try:
        return json.loads(Path(digests_file).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LogFormatError(digests_file, "files", f"digests of the bundled synthetic log are unreadable ({error}); reinstall the package") from None


def expected_digests(digests_file: Path = BUNDLED_LOG_DIR / DIGESTS_NAME) -> dict[str, dict]:
    """``{file name: {"bytes": int, "sha256": hex}}`` of the bundled log, as recorded in the package.

    Raises:
        LogFormatError: the digests file is missing or unreadable (a broken installation).
    """
    return {name: entries[0] for name, entries in accepted_digests(digests_file).items()}


def accepted_digests(digests_file: Path = BUNDLED_LOG_DIR / DIGESTS_NAME) -> dict[str, list[dict]]:
    """``{file name: [{"bytes": int, "sha256": hex}, ...]}``: the recorded digests first, then,
    per file, the variants recorded on other CPUs.

    The generator is deterministic on one machine, but a few of its floating-point results
    depend on the CPU's instruction set (OpenBLAS and numpy pick kernels per CPU: AVX2 and
    AVX-512 machines round some last bits differently), which moves a 4-decimal value of the
    planned path and so the bytes of the MCAP. Each such outcome seen on a supported machine
    is recorded (``write_digests(..., variant=...)``) and accepted; any other is reported.

    Raises:
        LogFormatError: the digests file is missing or unreadable (a broken installation).
    """
    files = _recorded_files(digests_file)
    try:
        return {
            name: [{"bytes": int(v["bytes"]), "sha256": str(v["sha256"])} for v in [entry, *entry.get("variants", [])]]
            for name, entry in files.items()
        }  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise LogFormatError(digests_file, "files", f"digests of the bundled synthetic log are unreadable ({error}); reinstall the package") from None


def differing_files(found: dict[str, dict], accepted: dict[str, list[dict]] | None = None) -> list[str]:
    """Names of bundled-log files whose digests (:func:`file_digests`) match no accepted digest (:func:`accepted_digests`)."""
    accepted = accepted_digests() if accepted is None else accepted
    return sorted(name for name, entries in accepted.items() if found.get(name) not in entries)


def file_digests(folder: str | Path) -> dict[str, dict]:
    """Size and SHA-256 of each bundled-log file present in ``folder`` (same layout as :func:`expected_digests`)."""
    out = {}
    for path in vars(_paths(Path(folder))).values():
        if path.is_file():
            sha = hashlib.sha256()
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    sha.update(block)
            out[path.name] = {"bytes": path.stat().st_size, "sha256": sha.hexdigest()}
    return out


def _complete(folder: Path, accepted: dict[str, list[dict]]) -> bool:
    """Every file present with a recorded size (cheap; the digests are checked when generating)."""
    return all((folder / name).is_file() and (folder / name).stat().st_size in {e["bytes"] for e in entries} for name, entries in accepted.items())


def _default_folders() -> list[Path]:
    cache = Path(os.environ.get("AVP_DATA_DIR", Path.home() / ".cache" / "av-pipeline")) / "synthetic"
    return [BUNDLED_LOG_DIR, cache]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def generate_bundled_log(folder: str | Path) -> BundledLog:
    """Write the bundled log into ``folder`` and check it against the recorded digests.

    Safe to call from several processes at once (a lock file in ``folder``; files are written
    in a temporary folder and renamed into place). A file whose digest differs from the
    recorded one (another build of numpy, numba or open3d) is kept, with a warning naming it:
    the log is still a valid log, but numbers the docs quote may differ.
    """
    from av_pipeline.synthetic.output import write_synthetic_log

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected = accepted_digests()
    with open(folder / f".{BUNDLED_CONFIG.log_id}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(folder, expected):
            return _paths(folder)
        print(
            f"av-pipeline: generating the bundled synthetic log ({BUNDLED_CONFIG.frames} frames, about 15 s) in {folder} ...",
            file=sys.stderr,
            flush=True,
        )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=folder, prefix=".generating-") as scratch:
            write_synthetic_log(BUNDLED_CONFIG, scratch)
            found = file_digests(scratch)
            differing = differing_files(found, expected)
            for name in found:
                os.replace(Path(scratch) / name, folder / name)
        if differing:
            message = (
                f"bundled synthetic log in {folder}: {', '.join(differing)} differ from the recorded digests "
                f"({DIGESTS_NAME}); the log is valid, but counts quoted in the docs may differ on this build"
            )
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            logger.warning(message)
        print(f"av-pipeline: bundled synthetic log ready ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return _paths(folder)


def bundled_log(folder: str | Path | None = None) -> BundledLog:
    """The bundled synthetic log, generated on first use.

    Args:
        folder: where to look (and generate when missing). Default: the package's
            ``data/synthetic`` folder, or ``$AVP_DATA_DIR/synthetic`` (``~/.cache/av-pipeline``)
            when the package folder is not writable.

    Raises:
        LogFormatError: the recorded digests are missing, or no folder can be written.
    """
    expected = accepted_digests()
    candidates = [Path(folder)] if folder is not None else _default_folders()
    for candidate in candidates:
        if _complete(candidate, expected):
            return _paths(candidate)
    for candidate in candidates:
        if _writable(candidate):
            return generate_bundled_log(candidate)
    raise LogFormatError(candidates[0], None, f"bundled synthetic log is missing and none of {[str(c) for c in candidates]} is writable; set AVP_DATA_DIR")


def write_digests(folder: str | Path, digests_file: Path = BUNDLED_LOG_DIR / DIGESTS_NAME, variant: str | None = None) -> Path:
    """Record the digests of the log in ``folder`` as the package's reference.

    Args:
        folder: a freshly generated bundled log.
        digests_file: the record to write.
        variant: ``None`` after a deliberate generator change (the folder's digests replace the
            record, variants included); otherwise a note naming the machine (e.g. ``"x86-64
            AVX-512"``): the folder's digests that the record does not accept yet are added to
            it as variants of those files, the rest is kept.
    """
    found = file_digests(folder)
    if variant is None:
        files: dict = found
    else:
        files = _recorded_files(digests_file)
        missing = sorted(set(files) - set(found))
        if missing:
            raise LogFormatError(folder, None, f"cannot record a digest variant: {', '.join(missing)} missing; generate the whole log first")
        for name in differing_files(found, accepted_digests(digests_file)):
            files[name].setdefault("variants", []).append(dict(found[name], where=variant))
    digests = {"log_id": BUNDLED_CONFIG.log_id, "config": BUNDLED_CONFIG.to_dict(), "files": files}
    tmp = Path(f"{digests_file}.tmp")
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, digests_file)
    return Path(digests_file)


__all__ = [
    "BUNDLED_CONFIG", "BUNDLED_LOG_DIR", "BundledLog", "accepted_digests", "bundled_log", "differing_files", "expected_digests", "file_digests",
    "generate_bundled_log", "write_digests",
]  # fmt: skip

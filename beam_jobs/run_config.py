"""The main job's options and output folder (:mod:`beam_jobs.run`, shared with the Spark
driver :mod:`beam_jobs.spark_run`): ``RunOptions``, the checked :class:`RunConfig`, the
command line with the bundled log as default, and clearing ``--out`` for a fresh or resumed run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import ConfigError
from av_pipeline.ingest import expand_log_patterns, import_reader_modules, parse_reader_options
from beam_jobs import mine as mine_job
from beam_jobs.common import prepare_output_dir, unknown_pipeline_args
from beam_jobs.ingest import IngestOptions
from beam_jobs.prelabel import PRELABEL_DIR, PrelabelOptions
from beam_jobs.run_steps import DATASETS_DIR, REPORT_DIR, SUMMARY_FILE

#: Everything the job writes in ``--out`` (replaced as a whole with ``--overwrite``).
RUN_OUTPUTS = (
    "ingest/index/*", "frames.jsonl", f"{PRELABEL_DIR}/*/*", "cases.parquet", "events.parquet", "cases.json", "campaign.json",
    mine_job.MINING_FILE, f"{DATASETS_DIR}/*", "figures/*", "calibration/*", "dead_letters/*", f"{REPORT_DIR}/*", SUMMARY_FILE,
)  # fmt: skip


class RunOptions(PipelineOptions):
    """Options of the main job besides those of ingest (``--logs``, ``--out``, readers),
    the pre-label job (``--weights``, ``--device``, ``--batch_size``) and the mining job
    (``--campaign``), which Beam parses together with these."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument(
            "--export_formats", default="openlabel,kitti,mcap", help="formats of each case's dataset, comma-separated (default: openlabel,kitti,mcap)"
        )
        parser.add_argument("--report_top_cases", type=int, default=20, help="cases with pictures in the report (default 20)")
        parser.add_argument(
            "--resume", action="store_true", default=False,
            help="keep the checkpointed logs of an earlier run in --out (outputs complete: checkpoints/<log>.json) and redo the rest",
        )  # fmt: skip


def _formats(text: str) -> list[str]:
    from av_pipeline.export import CASE_FORMATS

    formats = [f.strip() for f in str(text).split(",") if f.strip()]
    unknown = [f for f in formats if f not in CASE_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"export_formats: expected some of {list(CASE_FORMATS)}, got {formats}")
    return formats


@dataclass(frozen=True)
class RunConfig:
    """The main job's checked options (what the Beam pipeline and the Spark driver both need)."""

    out: str
    campaign: str
    formats: tuple[str, ...]
    reader: str | None
    reader_options: Mapping[str, Any]
    reader_modules: tuple[str, ...]
    weights: str | None
    device: str | None
    batch_size: int
    top_cases: int
    progress_interval_s: float
    overwrite: bool
    resume: bool
    logs: tuple[str, ...]

    @property
    def model_name(self) -> str:
        """The shadow model's name in the pre-label files."""
        return self.weights or "cpu_small"


def resolve_config(options: PipelineOptions) -> RunConfig:
    """Check the main job's options; import the reader modules.

    Raises:
        ConfigError: bad ``--out``, ``--batch_size``, ``--campaign``, ``--export_formats``,
            ``--report_top_cases`` or reader options.
    """
    opts = options.view_as(mine_job.MineOptions)
    model = options.view_as(PrelabelOptions)
    run_opts = options.view_as(RunOptions)
    if not opts.out:
        raise ConfigError("out: expected an output directory (--out DIR), got none")
    if model.batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {model.batch_size}")
    if run_opts.report_top_cases < 0:
        raise ConfigError(f"report_top_cases: expected a number >= 0, got {run_opts.report_top_cases}")
    if run_opts.resume and opts.overwrite:
        raise ConfigError("resume: --resume keeps an earlier run's complete logs and --overwrite deletes them; pass one")
    formats = _formats(run_opts.export_formats)
    from av_pipeline.mining import load_campaign

    load_campaign(opts.campaign)  # refuse a bad campaign before anything runs
    reader_options = parse_reader_options(opts.reader_option)
    import_reader_modules(list(opts.reader_module))
    return RunConfig(
        opts.out, opts.campaign, tuple(formats), opts.reader, reader_options, tuple(opts.reader_module), model.weights, model.device,
        model.batch_size, run_opts.report_top_cases, opts.progress_interval_s, bool(opts.overwrite), bool(run_opts.resume),
        tuple(options.view_as(IngestOptions).logs or ()),
    )  # fmt: skip


def job_arguments(argv: Sequence[str] | None) -> list[str]:
    """The command line with the bundled synthetic log added when no ``--logs`` is given.

    Raises:
        ConfigError: an option no options class declares (Beam would only log and ignore it).
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    unknown = unknown_pipeline_args(args)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; see python -m beam_jobs.run --help")
    if not any(a == "--logs" or a.startswith("--logs=") for a in args):
        from av_pipeline.synthetic import bundled_log

        args.append(f"--logs={bundled_log().mcap}")
    return args


def complete_logs(config: RunConfig) -> dict[str, dict[str, Any]]:
    """With ``--resume``: the checkpoints in ``--out`` of logs given in this run (log id ->
    record); otherwise none."""
    if not config.resume:
        return {}
    from beam_jobs.run_resume import read_checkpoints

    uris = set(expand_log_patterns(list(config.logs)))
    return {log_id: record for log_id, record in read_checkpoints(config.out).items() if record["log_uri"] in uris}


def prepare_run_output(config: RunConfig, done: Mapping[str, Any]) -> None:
    """Clear ``--out`` for a run: refuse an earlier run's outputs without ``--overwrite`` or
    ``--resume``; with ``--resume`` delete everything but the complete logs' per-log files
    (index, pre-labels, pictures, rig files, checkpoint), which the run reuses.

    Raises:
        ConfigError: earlier outputs without ``--overwrite`` / ``--resume``.
    """
    from beam_jobs.prelabel import safe_name
    from beam_jobs.run_resume import CHECKPOINT_DIR, checkpoint_path, index_path

    outputs = (*RUN_OUTPUTS, f"{CHECKPOINT_DIR}/*")
    if not config.resume:
        prepare_output_dir(config.out, outputs, config.overwrite)
        return
    keep = set()
    for log_id in done:
        keep |= {checkpoint_path(config.out, log_id), index_path(config.out, log_id)}
        keep |= {FileSystems.join(config.out, folder, safe_name(log_id)) for folder in (PRELABEL_DIR, "figures", "calibration")}
    stale = [
        m.path for pattern in outputs for m in FileSystems.match([FileSystems.join(config.out, pattern)])[0].metadata_list
        if not any(m.path == k or m.path.startswith(k + "/") for k in keep)
    ]  # fmt: skip
    if stale:
        FileSystems.delete(stale)
    if "://" not in config.out:
        Path(config.out).mkdir(parents=True, exist_ok=True)



__all__ = ["RUN_OUTPUTS", "RunConfig", "RunOptions", "complete_logs", "job_arguments", "prepare_run_output", "resolve_config"]

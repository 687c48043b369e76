"""The ``avp`` command line.

Each subcommand is a class in this package whose docstring is its help text; heavy
imports happen inside ``run`` so ``avp --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import textwrap
from typing import Sequence

from av_pipeline import __version__
from av_pipeline.errors import AVPipelineError

#: subcommand name -> "module:Class" (imported only when that subcommand runs or --help is built)
SUBCOMMANDS: dict[str, str] = {
    "run": "av_pipeline.cli.run:RunCommand",
    "demo": "av_pipeline.cli.demo:DemoCommand",
    "calib": "av_pipeline.cli.calib:CalibCommand",
    "ingest": "av_pipeline.cli.ingest:IngestCommand",
    "simulate": "av_pipeline.cli.simulate:SimulateCommand",
    "train": "av_pipeline.cli.train:TrainCommand",
    "prelabel": "av_pipeline.cli.prelabel:PrelabelCommand",
    "evaluate": "av_pipeline.cli.evaluate:EvaluateCommand",
    "mine": "av_pipeline.cli.mine:MineCommand",
    "report": "av_pipeline.cli.report:ReportCommand",
}
#: subcommand -> the extras that install what it needs beyond the core (calibration) install.
EXTRAS: dict[str, str] = {
    "run": "beam,detect,mining,export,report",
    "demo": "beam,detect,mining,export,report",
    "calib": "",
    "ingest": "beam",
    "simulate": "synthetic",
    "train": "detect,synthetic",
    "prelabel": "beam,detect",
    "evaluate": "detect",
    "mine": "beam,detect",
    "report": "mining,report",
}


def beam_job_argv(args: argparse.Namespace) -> list[str]:
    """Beam job options shared by ``avp prelabel``, ``avp mine`` and ``avp run``, from their
    common arguments: logs, out, batch size, reader options, weights, device, reader,
    ``--overwrite``, and ``--workers N`` (local worker processes) or ``--runner``.

    Raises:
        ConfigError: ``--workers`` below 1.
    """
    from av_pipeline.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers: expected a positive number of worker processes, got {args.workers}")
    argv = [f"--out={args.out}", f"--batch_size={args.batch_size}"] + [f"--logs={log}" for log in args.logs]
    argv += [f"--reader_option={item}" for item in args.reader_option]
    for flag, value in (("--weights", args.weights), ("--device", args.device), ("--reader", args.reader)):
        if value:
            argv.append(f"{flag}={value}")
    if args.overwrite:
        argv.append("--overwrite")
    if args.workers > 1:
        argv += ["--runner=DirectRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
    elif args.runner:
        argv.append(f"--runner={args.runner}")
    return argv


class Command:
    """Base class: subclasses set ``name``, add arguments in ``add_arguments`` and act in ``run``."""

    name = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:  # pragma: no cover - trivial default
        """Add this command's arguments to ``parser``."""

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Run the command; return the process exit code."""
        raise NotImplementedError(f"subcommand {cls.name!r} does not implement run()")


def _load(spec: str) -> type[Command]:
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand (help texts from the command docstrings)."""
    parser = argparse.ArgumentParser(
        prog="avp",
        description="av-pipeline: perception dataset pipeline for autonomous driving.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"avp {__version__}", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, spec in SUBCOMMANDS.items():
        try:
            cls = _load(spec)
            doc = textwrap.dedent(cls.__doc__ or "").strip()
            summary = doc.splitlines()[0] if doc else name
            cls.add_arguments(argparse.ArgumentParser(prog=f"avp {name}"))  # a dry run: may import an extra's modules
        except ModuleNotFoundError as exc:
            # A partial install (say the core, calibration-only one): the other commands still work.
            # No option prefix: whatever follows the command name is taken as is, then refused in main().
            child = sub.add_parser(name, help=f"(not installed: {_install_hint(name, exc)})", add_help=False, prefix_chars="\x00")
            child.add_argument("ignored", nargs="*")
            child.set_defaults(_command=None, _missing=_install_hint(name, exc))
            continue
        child = sub.add_parser(name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        cls.add_arguments(child)
        child.set_defaults(_command=cls)
    return parser


def _install_hint(command: str, exc: ModuleNotFoundError) -> str:
    extras = EXTRAS.get(command, "all")
    return f"module {exc.name!r} is missing; pip install \"av-pipeline[{extras or 'all'}]\" installs what avp {command} needs"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``avp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        # apache_beam logs this at import on every machine without the GCP extras; it is noise here.
        handler.addFilter(lambda record: "apitools not found" not in record.getMessage())
    if getattr(args, "_missing", None):
        print(f"avp {args.command}: error: {args._missing}", file=sys.stderr)
        return 1
    if not getattr(args, "_command", None):
        parser.print_help()
        return 2
    try:
        return int(args._command.run(args) or 0)
    except AVPipelineError as exc:
        print(f"avp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in ("av_pipeline", "calibration", "beam_jobs"):
            raise  # our own code is missing: a broken install, not a missing extra
        print(f"avp {args.command}: error: {_install_hint(args.command, exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

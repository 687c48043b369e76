"""``avp report``: the static HTML report of a mining run (:func:`av_pipeline.report.build_report`)."""

from __future__ import annotations

import argparse
import json

from av_pipeline.cli import Command


class ReportCommand(Command):
    """Write the mining report of a mining run: a static folder with index.html that opens offline.

    Sections: a summary (frames in, dead letters and why, cases, budget used), tables and
    charts per trigger, class and range bin, score distributions, calibration drift verdicts,
    and for each top case its reasons, links to its files and, for logs given with --logs, a
    bird's-eye view and the camera images with the shadow model's and the onboard cuboids.
    summary.json beside index.html holds the same numbers for machines. The mining folder
    does not record where the logs are: pass them with --logs to get the case pictures.
    Sections explained: docs/report.md.

    Examples:
      avp report out/mining --out out/report --logs av_pipeline/data/synthetic/synthetic_default.mcap
      avp report out/mining --out out/report --logs 'drives/*.mcap' --top 50 --overwrite
      avp report out/mining --out out/report --calibration out/demo/summary.json
    """

    name = "report"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("mining_dir", metavar="MINING_DIR", help="output folder of a mining run (avp mine --out)")
        parser.add_argument("--out", required=True, metavar="DIR", help="report folder (created)")
        parser.add_argument("--logs", nargs="+", default=[], metavar="URI", help="the mined logs (files, folders or quoted glob patterns), for the case pictures")
        parser.add_argument("--top", type=int, default=20, metavar="N", help="cases shown with pictures, best first (default 20)")
        parser.add_argument(
            "--calibration", default=None, metavar="FILE",
            help="JSON file of calibration drift verdicts: a list of {sensor, check, value, threshold, verdict, note}, "
            "{\"verdicts\": [...], \"figures\": [...], \"note\": ...}, or the summary.json of avp demo",
        )  # fmt: skip
        parser.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
        parser.add_argument("--json", action="store_true", help="print what was written as JSON")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.errors import ConfigError
        from av_pipeline.report import build_report

        if args.top < 0:
            raise ConfigError(f"--top: expected a number of cases >= 0, got {args.top}")
        calibration = _read_calibration(args.calibration) if args.calibration else None
        result = build_report(
            args.mining_dir, args.out, log_uris=_expand(args.logs), calibration=calibration, top_cases=args.top, overwrite=args.overwrite,
            progress=None if args.json else lambda line: print(f"report: {line}", flush=True),
        )  # fmt: skip
        summary = {
            "index_html": str(result.index_html), "summary_json": str(result.summary_json), "figures": len(result.figures),
            "cases": result.cases, "cases_shown": result.cases_shown, "cases_with_pictures": result.cases_with_pictures,
            "notes": {case: list(notes) for case, notes in result.notes.items()},
        }  # fmt: skip
        if args.json:
            print(json.dumps(summary, indent=2, sort_keys=True))
            return 0
        for case, notes in result.notes.items():
            for note in notes:
                print(f"note: {case}: {note}")
        print(
            f"report of {result.cases} cases ({result.cases_shown} shown, {result.cases_with_pictures} with pictures, "
            f"{len(result.figures)} figures) -> {result.index_html}"
        )
        return 0


def _expand(patterns: list[str]) -> list[str]:
    """Glob patterns expanded (sorted), other arguments as given."""
    import glob

    from av_pipeline.errors import ConfigError

    uris: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern) and "://" not in pattern:
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ConfigError(f"--logs: the pattern {pattern[:200]!r} matches no file")
            uris += matches
        else:
            uris.append(pattern)
    return uris


def _read_calibration(path: str):
    """The ``--calibration`` file's JSON; figure paths relative to the file's folder."""
    from pathlib import Path

    from av_pipeline.errors import ConfigError

    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--calibration: cannot read {path[:200]!r} as JSON ({str(exc)[:200]})") from exc
    if isinstance(document, dict) and isinstance(document.get("figures"), list):
        document["figures"] = [str(Path(path).parent / f) if isinstance(f, str) else f for f in document["figures"]]
    return document

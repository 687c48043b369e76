"""``build_report``: a mining run's folder -> a static HTML report folder.

Writes ``index.html`` (jinja2 templates shipped in ``av_pipeline/report/templates``; the CSS
is inlined, no script, no external resource), ``figures/`` (matplotlib PNG/JPEG files the page
links relatively) and ``summary.json`` (the same numbers for machines). The page opens
offline from the file system.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

from av_pipeline.errors import ConfigError, LogFormatError
from av_pipeline.mining.records import Case
from av_pipeline.report import tables
from av_pipeline.report.case_figures import ONBOARD, SHADOW
from av_pipeline.report.inputs import MiningRun, read_mining_run
from av_pipeline.report.verdicts import CalibrationSection, as_calibration_section

INDEX_HTML = "index.html"
SUMMARY_JSON = "summary.json"
FIGURES_DIR = "figures"
#: What a report folder holds; an earlier report's are replaced only with ``overwrite``.
REPORT_OUTPUTS = (INDEX_HTML, SUMMARY_JSON, FIGURES_DIR)
#: Files of the mining folder the page links to.
MINING_FILES = ("summary.json", "mining.json", "campaign.json", "cases.json", "events.parquet", "dead_letters")
#: Version of ``summary.json``'s layout.
SUMMARY_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        out_dir: the report folder.
        index_html: the page.
        summary_json: the numbers for machines.
        figures: every picture written (charts, case pictures, calibration figures).
        cases: cases in the mining run.
        cases_shown: top cases in the report.
        cases_with_pictures: shown cases with at least one picture.
        notes: case id -> why pictures are missing (only cases with notes).
    """

    out_dir: Path
    index_html: Path
    summary_json: Path
    figures: tuple[Path, ...]
    cases: int
    cases_shown: int
    cases_with_pictures: int
    notes: Mapping[str, tuple[str, ...]]


def _prepare(out_dir: Path, mining_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out_dir: {str(out_dir)[:200]!r} is a file, expected a folder (created when missing)")
    if out_dir.resolve() == mining_dir.resolve():
        raise ConfigError(f"out_dir: {str(out_dir)[:200]!r} is the mining folder; the report's summary.json would replace the mining run's; choose another folder")
    earlier = [out_dir / name for name in REPORT_OUTPUTS if (out_dir / name).exists()]
    if earlier and not overwrite:
        raise ConfigError(f"out_dir: {str(out_dir)[:200]} already holds a report ({', '.join(p.name for p in earlier)}); pass overwrite=True (avp report --overwrite) or choose another folder")
    for path in earlier:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (out_dir / FIGURES_DIR).mkdir(parents=True)


def _href(target: str | Path, out_dir: Path) -> str:
    """A link from a page in ``out_dir`` to ``target``: relative (percent-encoded) when both are
    on one file system root, so the report and the mining folder can move together; else a
    ``file://`` URI."""
    target = Path(target)
    try:
        return quote(Path(os.path.relpath(target.absolute(), out_dir.absolute())).as_posix())
    except ValueError:  # another drive (Windows)
        return target.absolute().as_uri()


def _link(label: str, target: str | Path, out_dir: Path) -> dict[str, Any]:
    target = Path(target)
    return {"label": label, "href": _href(target, out_dir), "path": str(target), "exists": target.exists()}


def _exported_links(exported: Mapping[str, Mapping[str, str]] | None, out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """case id -> ``[{label, href, path, exists}]``; relative paths are relative to ``out_dir``."""
    if exported is not None and not isinstance(exported, Mapping):
        raise ConfigError(f"exported: expected a mapping case id -> {{format: path}}, got {type(exported).__name__}")
    links: dict[str, list[dict[str, Any]]] = {}
    for case_id, files in (exported or {}).items():
        if not isinstance(files, Mapping):
            raise ConfigError(f"exported[{str(case_id)[:80]!r}]: expected a mapping format -> path, got {type(files).__name__}")
        for fmt, path in files.items():
            if not isinstance(path, (str, os.PathLike)):
                raise ConfigError(f"exported[{str(case_id)[:80]!r}][{str(fmt)[:40]!r}]: expected a path, got {type(path).__name__}")
            path = Path(path)
            links.setdefault(str(case_id), []).append(_link(f"exported {fmt}", path if path.is_absolute() else out_dir / path, out_dir))
    return links


def _case_files(run: MiningRun, case: Case, source: Any, out_dir: Path) -> list[dict[str, Any]]:
    """Links to the files of the mining run that hold ``case``, its log and its pre-labels."""
    links = [_link("cases.json (all cases)", run.mining_dir / "cases.json", out_dir), _link("events.parquet (all events)", run.mining_dir / "events.parquet", out_dir)]
    try:
        folder = source.prelabel_folder(case.log_id)
    except LogFormatError:
        folder = None
    if folder is not None:
        links.append(_link("shadow pre-labels of the log", folder / "prelabels.parquet", out_dir))
    uri = source.log_uri(case.log_id)
    if uri is not None and "://" not in uri:
        links.append(_link("the log", uri, out_dir))
    return links


def _charts(run: MiningRun, rows: Mapping[str, list[dict[str, Any]]], folder: Path) -> dict[str, Path]:
    from av_pipeline.report.charts import bar_chart, score_histograms

    by_trigger: dict[str, list[float]] = {row["trigger"]: [] for row in rows["per_trigger"]}  # the campaign's order
    for case in run.cases:
        for event in case.events:
            by_trigger.setdefault(event.trigger, []).append(event.score)
    # Triggers that fired nowhere stay in the table, not in the chart (a campaign has a dozen).
    triggers = [r for r in rows["per_trigger"] if r["fired"] or r["events_in_cases"]]
    classes, bins = rows["per_class"], rows["per_range_bin"]
    return {
        "triggers": bar_chart(
            folder / "triggers.png", [r["trigger"] for r in triggers],
            {"fired (all logs)": [r["fired"] for r in triggers], "events in selected cases": [r["events_in_cases"] for r in triggers], "selected cases": [r["cases"] for r in triggers]},
            title="Per trigger (the triggers that fired)",
        ),
        "classes": bar_chart(
            folder / "classes.png", [r["label"] for r in classes],
            {"events in selected cases": [r["events_in_cases"] for r in classes], "selected cases": [r["cases"] for r in classes]},
            title="Per class (selected cases only)",
        ),
        "range_bins": bar_chart(
            folder / "range_bins.png", [r["bin"] for r in bins],
            {"events in selected cases": [r["events_in_cases"] for r in bins], "selected cases (by strongest event)": [r["cases"] for r in bins]},
            title="Per range bin (selected cases only)",
        ),
        "event_scores": score_histograms(folder / "event_scores.png", by_trigger, title="Event scores per trigger (events of the selected cases)"),
        "case_scores": score_histograms(folder / "case_scores.png", {"selected cases": [c.score for c in run.cases]}, title="Case scores", columns=1),
    }  # fmt: skip


def _calibration_figures(section: CalibrationSection | None, folder: Path) -> list[Path]:
    copies = []
    for k, figure in enumerate(section.figures if section is not None else ()):
        folder.mkdir(parents=True, exist_ok=True)
        # a plain file name: the page links it as is ('#', '?' or '%' would change the URL)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(figure).name)[-80:]
        copies.append(Path(shutil.copyfile(figure, folder / f"{k:02d}_{name}")))
    return copies


def _number(value: float, digits: int) -> float | None:
    """Rounded, or ``None`` for NaN / inf (which JSON cannot hold)."""
    return round(float(value), digits) if math.isfinite(value) else None


def _object_text(o: Any) -> str:
    if o.source == "ego":
        return "the ego vehicle"
    return f"{o.source} {o.label} #{o.track_id}" + (f" ({o.camera})" if o.camera else "")


def _case_entries(run: MiningRun, top: int, out_dir: Path, log_uris: dict[str, str], links: dict, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    from av_pipeline.figures import format_time_ns
    from av_pipeline.report.case_figures import KeyFrameSource, key_frame_pictures

    entries = []
    shown = run.cases[:top]
    with KeyFrameSource(log_uris, run.prelabel_dir) as source:
        for k, case in enumerate(shown):
            progress(f"case {k + 1}/{len(shown)}: {case.case_id}")
            pictures = key_frame_pictures(source, case, out_dir / FIGURES_DIR / f"case{case.rank:04d}", out_dir)
            entries.append({
                "case_id": case.case_id, "rank": case.rank, "log_id": case.log_id, "score": _number(case.score, 4),
                "first_frame": case.first_frame, "last_frame": case.last_frame,
                "start": format_time_ns(case.first_timestamp_ns), "duration_s": round((case.last_timestamp_ns - case.first_timestamp_ns) / 1e9, 3),
                "key_frames": list(case.key_frames), "key_timestamps_ns": list(case.key_timestamps_ns),
                "triggers": list(case.triggers), "labels": list(case.labels),
                "events": [
                    {"trigger": e.trigger, "score": _number(e.score, 4), "label": e.label or tables.EGO_ROW, "range_m": _number(e.range_m, 1),
                     "frames": f"{e.first_frame}-{e.last_frame}", "reason": e.reason,
                     "objects": [_object_text(o) for o in e.objects]}
                    for e in case.events
                ],
                "pictures": [{"path": p.path, "caption": p.caption} for p in pictures.pictures], "notes": list(pictures.notes),
                "files": _case_files(run, case, source, out_dir) + links.get(case.case_id, []),
            })  # fmt: skip
    return entries


def _render(context: Mapping[str, Any]) -> str:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("av_pipeline.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    return environment.get_template("index.html.j2").render(**context)


def build_report(
    mining_dir: str | Path,
    out_dir: str | Path,
    *,
    log_uris: Mapping[str, str] | Iterable[str] | None = None,
    exported: Mapping[str, Mapping[str, str]] | None = None,
    calibration: Any = None,
    top_cases: int = 20,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the mining report of ``mining_dir`` into ``out_dir`` (sections: docs/report.md).

    Args:
        mining_dir: a mining run's output folder (``avp mine --out``).
        out_dir: the report folder (created); an earlier report there is refused unless
            ``overwrite`` (which replaces ``index.html``, ``summary.json`` and ``figures/`` only).
        log_uris: where the logs are, for the pictures of the top cases (mining outputs do not
            record it): ``{log_id: uri}``, or a list of URIs (each opened to read its log id).
            Cases of other logs are shown without pictures, with a note saying why.
        exported: case id -> ``{format: path}`` of the case's exported files; relative paths
            are relative to ``out_dir``. Shown as links.
        calibration: calibration drift verdicts and figures, see
            :func:`~av_pipeline.report.verdicts.as_calibration_section`; ``None``: the section
            says none were given.
        top_cases: how many cases (by rank) get a section with pictures (>= 0).
        overwrite: replace an earlier report in ``out_dir``.
        progress: called with one line per step (``"case 3/20: <case id>"``).

    Raises:
        ConfigError: bad arguments (the message names the argument): ``mining_dir`` not a
            folder, ``out_dir`` a file, the mining folder, or holding a report; a URI in a
            ``log_uris`` list that no reader opens; ``top_cases`` not an integer >= 0 ...
        LogFormatError: a mining file is missing or malformed (naming file and field).
    """
    import av_pipeline

    if isinstance(top_cases, bool) or not isinstance(top_cases, int) or top_cases < 0:
        raise ConfigError(f"top_cases: expected an integer >= 0, got {str(top_cases)[:40]!r}")
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite: expected True or False, got {str(overwrite)[:40]!r}")
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress: expected a function of one line of text, or None; got {type(progress).__name__}")
    say = progress or (lambda line: None)
    out_dir, mining_dir = Path(out_dir), Path(mining_dir)
    run = read_mining_run(mining_dir)
    section = as_calibration_section(calibration)
    uris = _resolve(log_uris)
    links = _exported_links(exported, out_dir)
    _prepare(out_dir, mining_dir, overwrite)
    figures = out_dir / FIGURES_DIR
    say(f"read {len(run.cases)} cases, {len(run.dead_letters)} dead letters from {mining_dir}")
    rows = {
        "per_trigger": tables.trigger_rows(run), "per_class": tables.class_rows(run), "per_range_bin": tables.range_rows(run),
        "per_log": tables.log_rows(run), "skipped_triggers": tables.skipped_rows(run), "dead_letter_groups": tables.dead_letter_rows(run.dead_letters),
    }  # fmt: skip
    say("charts")
    charts = _charts(run, rows, figures)
    calibration_figures = _calibration_figures(section, figures / "calibration")
    cases = _case_entries(run, top_cases, out_dir, uris, links, say)
    overview = tables.overview(run)
    generated = datetime.now(timezone.utc)
    summary = {
        "format_version": SUMMARY_FORMAT_VERSION, "mining_dir": str(mining_dir), "generated_utc": generated.strftime("%Y-%m-%dT%H:%M:%SZ"), **overview, **rows,
        "calibration": None if section is None else {"verdicts": [v.to_dict() for v in section.verdicts], "note": section.note,
                                                     "figures": [p.relative_to(out_dir).as_posix() for p in calibration_figures]},
        "top_cases": top_cases, "cases_shown": cases,
    }  # fmt: skip
    say("page")
    html = _render({
        "o": overview, "rows": rows, "cases": cases, "top_cases": top_cases, "mining_dir": str(mining_dir), "campaign": run.campaign,
        "charts": {k: p.relative_to(out_dir).as_posix() for k, p in charts.items()}, "calibration": summary["calibration"],
        "verdicts": [] if section is None else list(section.verdicts), "version": av_pipeline.__version__,
        "generated": generated.strftime("%Y-%m-%d %H:%M UTC"), "range_bins_m": list(run.range_bins_m),
        "mining_files": [_link(name, mining_dir / name, out_dir) for name in MINING_FILES], "legend": [SHADOW, ONBOARD],
    })  # fmt: skip
    (out_dir / INDEX_HTML).write_text(html, encoding="utf-8")
    (out_dir / SUMMARY_JSON).write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    written = sorted(p for p in figures.rglob("*") if p.is_file())
    notes = {c["case_id"]: tuple(c["notes"]) for c in cases if c["notes"]}
    return ReportResult(out_dir, out_dir / INDEX_HTML, out_dir / SUMMARY_JSON, tuple(written), len(run.cases), len(cases), sum(1 for c in cases if c["pictures"]), notes)


def _resolve(log_uris: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    from av_pipeline.report.case_figures import resolve_log_uris

    if isinstance(log_uris, (str, bytes, os.PathLike)):
        raise ConfigError(f"log_uris: expected a mapping log_id -> uri or a list of uris, got a single path {str(log_uris)[:200]!r} (wrap it in a list)")
    if log_uris is not None and not isinstance(log_uris, (Mapping, Iterable)):
        raise ConfigError(f"log_uris: expected a mapping log_id -> uri or a list of uris, got {type(log_uris).__name__}")
    if isinstance(log_uris, Mapping):
        bad = [k for k, v in log_uris.items() if not isinstance(v, (str, os.PathLike))]
        if bad:
            raise ConfigError(f"log_uris[{str(bad[0])[:80]!r}]: expected a path or URI, got {type(log_uris[bad[0]]).__name__}")
    return resolve_log_uris(log_uris)


__all__ = ["FIGURES_DIR", "INDEX_HTML", "REPORT_OUTPUTS", "ReportResult", "SUMMARY_JSON", "build_report"]

"""Mining against planted anomalies: recall per anomaly kind and case precision under a budget.

Synthetic drives (``--seeds``, ``--frames`` each; LiDAR simulated, no camera rendering) with
:data:`~av_pipeline.mining.synthetic_eval.BENCHMARK_RATES` anomalies are mined with a campaign
(default: the shipped ``default``, 10% of frames as key frames) twice:

- **detector**: the shipped pre-label detector with offboard refinement as the shadow model;
- **oracle**: the ground truth as the shadow model, which separates trigger quality from
  detector quality.

Then one drive with every anomaly rate at 0 gives the baseline noise: events and cases per
100 frames from the onboard perception's ordinary errors (none of which is an anomaly).

Run: ``python benchmarks/mining.py [--seeds 10041,...,10050] [--frames 200]
[--shadow detector,oracle] [--json out.json] [--keep DIR]``; ``--rescore DIR --campaign FILE``
mines what a ``--keep`` run left with another campaign in seconds (tuning; its numbers are
not held out). Mining seeds must differ from the detector's
training seeds (100000+), its ground-truth database (900000+) and its evaluation seeds (1-5).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def _score_json(run) -> dict:
    s = run.score
    return {
        "kinds": {k.kind: {"planted": k.planted, "found": k.found, "recall": None if not k.planted else round(k.recall, 3)} for k in s.kinds},
        "recall": round(s.recall, 3),
        "cases": s.cases,
        "true_cases": s.true_cases,
        "precision": None if not s.cases else round(s.precision, 3),
        "key_frames": s.key_frames,
        "frames": s.frames,
        "seconds": {k: round(v, 1) for k, v in run.seconds.items()},
        "events_per_trigger": _events(run),
    }


def _events(run) -> dict:
    total: dict[str, int] = {}
    for r in run.results:
        for trigger, n in r.events_per_trigger.items():
            total[trigger] = total.get(trigger, 0) + n
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(str(s) for s in range(10041, 10051)), help="comma-separated drive seeds")
    parser.add_argument("--frames", type=int, default=200, help="frames per drive (default 200)")
    parser.add_argument("--shadow", default="detector,oracle", help="shadow models to run: detector, oracle (comma-separated)")
    parser.add_argument("--campaign", default="default", help="campaign file or shipped name")
    parser.add_argument("--noise-seed", type=int, default=10051, help="seed of the anomaly-free drive (baseline noise); -1 to skip")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--keep", type=Path, default=None, help="also pickle each drive's mining evidence here (LOG_ID.SHADOW.pkl, about 6 MB each)")
    parser.add_argument(
        "--rescore", type=Path, default=None,
        help="mine and score the evidence a --keep run left in this folder with --campaign (no simulation, no shadow model; no baseline-noise run)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    from av_pipeline.mining import load_campaign
    from av_pipeline.mining.synthetic_eval import BENCHMARK_RATES, detector_shadow, mine_synthetic, oracle_shadow, rescore_kept
    from av_pipeline.synthetic.config import ANOMALY_KINDS

    seeds = [int(s) for s in args.seeds.split(",") if s]
    campaign = load_campaign(args.campaign)
    shadows = {}
    for name in [s.strip() for s in args.shadow.split(",") if s.strip()]:
        if args.rescore is not None:
            shadows[name] = None
        elif name == "oracle":
            shadows[name] = oracle_shadow
        elif name == "detector":
            import torch

            from av_pipeline.detect import Detector

            if args.threads:
                torch.set_num_threads(args.threads)
            shadows[name] = detector_shadow(Detector.from_pretrained())
        else:
            parser.error(f"--shadow: unknown shadow model {name!r}; expected detector or oracle")

    load = os.getloadavg()
    print(f"mining benchmark: seeds {seeds}, {args.frames} frames each, campaign {campaign.name}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"anomaly rates per 100 frames: {BENCHMARK_RATES}")
    results = {}
    t0 = time.perf_counter()
    if args.rescore is not None:
        runs = rescore_kept(args.rescore, campaign, list(shadows))
        seeds = sorted({int(log.rsplit("_", 1)[-1]) for run in runs.values() for log in run.anomalies if log.rsplit("_", 1)[-1].isdigit()})
        print(f"re-mined the evidence kept in {args.rescore} (seeds {seeds}) in {time.perf_counter() - t0:.0f} s")
    else:
        runs = mine_synthetic(seeds, args.frames, campaign, shadows, progress=lambda line: print(f"  {line}", flush=True), keep_dir=args.keep)
        print(f"simulated and mined in {time.perf_counter() - t0:.0f} s")
    for name, run in runs.items():
        results[name] = _score_json(run)
        spent = ", ".join(f"{part} {value:.0f} s" for part, value in run.seconds.items())
        print(f"\n## shadow = {name} ({spent})\n")
        print(run.score.table())
        misses = run.missed()
        results[name]["missed"] = [{"log_id": log, "kind": a.kind, "track_id": a.track_id, "frames": [a.first_frame, a.last_frame], "reason": a.reason} for log, a in misses]
        for log, a in misses:
            print(f"  missed: {log} {a.kind} frames {a.first_frame}-{a.last_frame}: {a.reason}")
        print()
    if len(results) > 1:
        names = list(results)
        print("| anomaly kind | planted | " + " | ".join(f"recall ({n})" for n in names) + " |")
        print("|---|---:|" + "---:|" * len(names))
        for kind in ANOMALY_KINDS:
            planted = results[names[0]]["kinds"][kind]["planted"]
            if planted:
                print(f"| {kind} | {planted} | " + " | ".join(f"{results[n]['kinds'][kind]['recall']:.2f}" for n in names) + " |")
        print("| **case precision** | | " + " | ".join(f"{results[n]['precision']:.2f} ({results[n]['true_cases']}/{results[n]['cases']})" for n in names) + " |")
        print("| **key frames used** | | " + " | ".join(f"{results[n]['key_frames']} of {results[n]['frames']}" for n in names) + " |")

    if args.noise_seed >= 0 and args.rescore is None:
        zero = {k: 0.0 for k in ANOMALY_KINDS}
        name, shadow = next(iter(shadows.items()))
        run = mine_synthetic([args.noise_seed], args.frames, campaign, {name: shadow}, rates=zero)[name]
        per100 = {t: round(100.0 * n / run.score.frames, 2) for t, n in sorted(_events(run).items())}
        results["baseline_noise"] = {
            "seed": args.noise_seed, "shadow": name, "frames": run.score.frames, "events_per_100_frames": per100,
            "events_per_100_frames_total": round(sum(per100.values()), 2), "cases": run.score.cases,
            "cases_per_100_frames": round(100.0 * run.score.cases / run.score.frames, 2),
        }  # fmt: skip
        print(f"\n## baseline noise: seed {args.noise_seed}, every anomaly rate 0, shadow = {name}\n")
        print("| trigger | events per 100 frames |\n|---|---:|")
        for trigger, value in per100.items():
            print(f"| {trigger} | {value:.2f} |")
        print(f"\nall triggers: {sum(per100.values()):.2f} events per 100 frames; {run.score.cases} cases selected "
              f"({100.0 * run.score.cases / run.score.frames:.2f} per 100 frames){', every one a false alarm' if run.score.cases else ''}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seeds": seeds, "frames": args.frames, "campaign": campaign.name, "load_average": load, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

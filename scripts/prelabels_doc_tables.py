"""Print the synthetic-evaluation tables of docs/prelabels.md from docs/data/prelabels_evaluation.json.

``scripts/evaluate_detector.py`` writes the JSON (raw and refined separately); this merges
them into the "raw / refined" tables the docs show, so the docs are pasted, not typed.

Run: ``python scripts/prelabels_doc_tables.py [docs/data/prelabels_evaluation.json]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BINS = ("0-20", "20-40", "40-70", "all")
CLASSES = (("car", "0.7"), ("van", "0.7"), ("truck", "0.7"), ("pedestrian", "0.5"), ("cyclist", "0.5"))


def ap_table(raw: dict, ref: dict) -> list[str]:
    lines = ["| class | metric | 0-20 m | 20-40 m | 40-70 m | all |", "|---|---|---|---|---|---|"]
    for name, iou in CLASSES:
        rows = [
            (f"3D AP@{iou}", raw["kitti_ap_r40"]["3d"][name], ref["kitti_ap_r40"]["3d"][name], True),
            (f"BEV AP@{iou}", raw["kitti_ap_r40"]["bev"][name], ref["kitti_ap_r40"]["bev"][name], False),
            ("nuScenes AP", {k: v["mean"] for k, v in raw["nuscenes_ap"][name].items()}, {k: v["mean"] for k, v in ref["nuscenes_ap"][name].items()}, False),
        ]
        for metric, a, b, bold in rows:
            cells = [f"{a[k]:.3f} / **{b[k]:.3f}**" if bold else f"{a[k]:.3f} / {b[k]:.3f}" for k in BINS]
            lines.append(f"| {name} | {metric} raw / refined | " + " | ".join(cells) + " |")
        lines.append(f"| {name} | ground-truth boxes | " + " | ".join(str(ref["num_gt"][name][k]) for k in BINS) + " |")
    return lines


def quality_table(raw: dict, ref: dict) -> list[str]:
    lines = [
        "| class | range | boxes | no correction raw / refined | mean corner error (m) raw / refined | missed raw / refined | to delete raw / refined |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, _ in CLASSES:
        for k in BINS:
            a, b = raw["prelabels"][name][k], ref["prelabels"][name][k]
            lines.append(
                f"| {name} | {k} | {b['num_gt']} | {100 * a['no_correction_share']:.1f}% / {100 * b['no_correction_share']:.1f}% | "
                f"{a['mean_corner_error_m']:.2f} / {b['mean_corner_error_m']:.2f} | {100 * a['missed_share']:.1f}% / {100 * b['missed_share']:.1f}% | "
                f"{100 * a['to_delete_share']:.1f}% / {100 * b['to_delete_share']:.1f}% |"
            )
    return lines


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/data/prelabels_evaluation.json")
    synthetic = json.loads(path.read_text())["synthetic"]
    raw, ref = synthetic["before_refinement"], synthetic["after_refinement"]
    print("\n".join(ap_table(raw, ref)))
    print()
    print("\n".join(quality_table(raw, ref)))
    cars = synthetic["cars_within_40m_no_correction"]
    stats = synthetic["refine_stats"]
    total = {k: sum(s[k] for s in stats) for k in stats[0]}
    print()
    print(
        f"cars within 40 m needing no correction: {100 * cars['before']['no_correction_share']:.1f}% raw, "
        f"{100 * cars['after']['no_correction_share']:.1f}% refined ({cars['after']['num_gt']} boxes; mean corner error "
        f"{cars['before']['mean_corner_error_m']:.2f} m raw, {cars['after']['mean_corner_error_m']:.2f} m refined)"
    )
    print("refinement over all drives:", json.dumps(total))


if __name__ == "__main__":
    main()

"""Dataset manifest: the Parquet and JSON rows agree, every path resolves relative to the
dataset root (also after the dataset is moved), and the product version is recorded."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq

from av_pipeline import __version__
from av_pipeline.export import export_case, read_manifest, write_manifest
from av_pipeline.export.manifest import MANIFEST_VERSION, PATH_COLUMNS, manifest_schema
from tests.av_pipeline.export_fixtures import boxes, tiny_case, tiny_frame


def _dataset(root):
    """Two cases of two logs: rank 1 in every format, rank 0 as OpenLABEL only (exported in the other order)."""
    a_frames = [tiny_frame(k, log_id="drive_a") for k in range(3)]
    b_frames = [tiny_frame(k, log_id="drive_b") for k in range(2)]
    shadow = {f.timestamp_ns: boxes(k, offset_m=0.2) for k, f in enumerate(a_frames[:2])}
    exported = [
        export_case(tiny_case(0, 2, log_id="drive_a", rank=1), a_frames, shadow, root),
        export_case(tiny_case(0, 1, log_id="drive_b", rank=0), b_frames, None, root, formats=("openlabel",)),
    ]
    return exported, write_manifest(exported, root)


def test_parquet_and_json_rows_agree_and_record_the_version(tmp_path):
    exported, (parquet_path, json_path) = _dataset(tmp_path)
    assert (parquet_path, json_path) == (tmp_path / "manifest.parquet", tmp_path / "manifest.json")
    table = pq.read_table(parquet_path)
    assert table.schema.equals(manifest_schema())
    parquet_rows = table.to_pylist()
    document = json.loads(json_path.read_text())
    assert document["format_version"] == MANIFEST_VERSION and document["av_pipeline_version"] == __version__
    assert parquet_rows == document["cases"] == read_manifest(tmp_path)
    assert [row["rank"] for row in parquet_rows] == [0, 1] and [row["log_id"] for row in parquet_rows] == ["drive_b", "drive_a"]
    assert all(row["av_pipeline_version"] == __version__ for row in parquet_rows)
    a = parquet_rows[1]
    assert a["frame_indices"] == [0, 1, 2] and a["frames_without_shadow"] == [2] and a["frames_without_onboard"] == []
    assert (a["num_shadow_boxes"], a["num_onboard_boxes"]) == (6, 9)
    assert a["key_frames"] == [1] and a["triggers"] == ["ghost", "uncertain_shadow"] and len(a["reasons"]) == 2
    b = parquet_rows[0]
    assert b["openlabel_path"] is not None and b["kitti_shadow_path"] is b["kitti_onboard_path"] is b["mcap_path"] is None
    assert b["frames_without_shadow"] == [0, 1]
    # the pandas view (docs/datasets.md) reads the same rows
    frame = table.to_pandas()
    assert frame["case_id"].tolist() == [row["case_id"] for row in document["cases"]]


def test_paths_are_relative_and_resolve_after_the_dataset_moves(tmp_path):
    _dataset(tmp_path / "original")
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "original", moved)
    rows = pq.read_table(moved / "manifest.parquet").to_pylist()
    checked = 0
    for row in rows:
        for column in PATH_COLUMNS.values():
            path = row[column]
            if path is None:
                continue
            assert not path.startswith("/") and "\\" not in path and ".." not in path.split("/")
            target = moved / path
            assert target.is_dir() if column.startswith("kitti") else target.is_file(), f"{row['case_id']}: {column} {path}"
            checked += 1
        case_dir = (moved / row["openlabel_path"]).parent
        assert case_dir.parent == moved / "cases"
        assert json.loads((moved / row["openlabel_path"]).read_text())["openlabel"]["metadata"]["av_pipeline"]["case_id"] == row["case_id"]
    assert checked == 5
    split = moved / rows[1]["kitti_shadow_path"]
    assert sorted(p.name for p in split.iterdir()) == ["av_pipeline_samples.json", "calib", "image_2", "label_2", "velodyne"]

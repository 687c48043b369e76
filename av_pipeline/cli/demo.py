"""``avp demo``: the main job (``avp run``) on the bundled default data, into out/demo."""

from __future__ import annotations

from av_pipeline.cli.run import RunCommand


class DemoCommand(RunCommand):
    """The main job on the bundled synthetic drive log (or on LOGS), written to --out (default out/demo).

    The same as ``avp run`` with a default output folder: ingest, fusion and voxels,
    pre-labels, mining, edge-case datasets and the report (out/demo/report/index.html).
    An --out that holds an earlier run is refused unless --overwrite is given.

    Examples:
      avp demo --overwrite
      avp demo ../shared/data/kitti/training --out /tmp/kitti_demo
      avp demo 'drives/*.mcap' --out /tmp/demo --workers 2
    """

    name = "demo"
    default_out = "out/demo"

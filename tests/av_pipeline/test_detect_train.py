"""Training: the spconv CPU shim, targets, and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spconv")

from av_pipeline.detect import config as detect_config  # noqa: E402
from av_pipeline.detect.train import train  # noqa: E402
from av_pipeline.detect.train_config import AugmentConfig, DriveSamplingConfig, TrainConfig  # noqa: E402
from av_pipeline.errors import ConfigError  # noqa: E402
from tests.av_pipeline.detect_fixtures import TINY  # noqa: E402


def test_spconv_backward_runs_on_cpu_only_torch():
    import spconv.pytorch as spconv

    from av_pipeline.detect.spconv_compat import ensure_cpu_backward

    active = ensure_cpu_backward()
    assert active == (not torch.cuda.is_available())
    conv = spconv.SubMConv3d(3, 4, 3, padding=1, indice_key="s")
    coords = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 2], [0, 2, 2, 2]], dtype=torch.int32)
    features = torch.randn(3, 3, requires_grad=True)
    out = conv(spconv.SparseConvTensor(features, coords, [4, 4, 4], 1))
    out.features.sum().backward()  # fails with "Torch not compiled with CUDA enabled" without the shim
    assert features.grad is not None and torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def _config(steps: int) -> TrainConfig:
    return TrainConfig(
        model="tiny", steps=steps, batch_size=1, max_lr=1e-3, database_drives=1, checkpoint_every=1, log_every=1, workers=0,
        sampling=DriveSamplingConfig(frames_per_drive=2, frame_stride=1), augment=AugmentConfig(paste_per_class={"pedestrian": 2}),
    )  # fmt: skip


class _Stop(Exception):
    pass


def run_in_fresh_process(out: str, steps: int, stop_at: int = 0, resume: bool = False) -> None:
    """Train the tiny model (a separate interpreter runs this: a resume happens in a new process)."""
    torch.set_num_threads(1)
    detect_config.PRESETS["tiny"] = TINY

    def stop(row: dict) -> None:
        if row["step"] == stop_at:
            raise _Stop

    try:
        train(_config(steps), out, resume=resume, progress=stop if stop_at else None)
    except _Stop:
        pass


def _train_process(out, steps: int, stop_at: int = 0, resume: bool = False) -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = f"from tests.av_pipeline.test_detect_train import run_in_fresh_process as r; r({str(out)!r}, {steps}, {stop_at}, {resume})"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True, timeout=900)


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setitem(detect_config.PRESETS, "tiny", TINY)
    _train_process(tmp_path / "a", 4)
    _train_process(tmp_path / "b", 4, stop_at=3)  # killed after step 3, before its checkpoint
    with pytest.raises(ConfigError, match="--resume"):
        train(_config(4), tmp_path / "b")
    with pytest.raises(ConfigError, match="another training configuration"):
        train(TrainConfig(**{**_config(4).__dict__, "max_lr": 2e-3}), tmp_path / "b", resume=True)
    _train_process(tmp_path / "b", 4, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():
        np.testing.assert_allclose(tensor.float().numpy(), b["model"][name].float().numpy(), atol=1e-6, err_msg=name)

    def losses(run: str) -> dict[int, float]:
        with open(tmp_path / run / "loss.csv") as handle:
            return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(handle)}

    la, lb = losses("a"), losses("b")
    assert sorted(lb) == [1, 2, 3, 4]  # the row of step 3 written before the stop was replaced
    assert lb == la and all(np.isfinite(list(la.values())))
    assert (tmp_path / "b" / "loss.png").stat().st_size > 1000


def test_samples_do_not_depend_on_what_came_before(monkeypatch):
    from av_pipeline.detect.training_data import SyntheticSampleStream

    monkeypatch.setitem(detect_config.PRESETS, "tiny", TINY)
    config = _config(4)
    first = SyntheticSampleStream(0, config.sampling, config.augment, None, TINY.classes)
    for i in range(3):
        first.sample(i)
    fresh = SyntheticSampleStream(0, config.sampling, config.augment, None, TINY.classes)
    a, b = first.sample(3), fresh.sample(3)
    np.testing.assert_array_equal(a.points_ego, b.points_ego)
    assert a.boxes == b.boxes and len(a.boxes) > 0


def test_targets_round_trip_through_the_decoder():
    from av_pipeline.boxes import Cuboids
    from av_pipeline.detect.decode import decode_frame
    from av_pipeline.detect.geometry import cuboid_iou_3d
    from av_pipeline.detect.model import HeadOutput
    from av_pipeline.detect.targets import build_targets

    rng = np.random.default_rng(0)
    n = 12
    labels = rng.choice(TINY.classes, n)
    boxes = Cuboids.from_arrays(
        "ego", np.column_stack([rng.uniform(-24, 24, (n, 2)), rng.uniform(0.5, 1.5, n)]),
        rng.uniform(0.6, 5, (n, 3)), rng.uniform(-np.pi, np.pi, n), labels,
    )  # fmt: skip
    # spread out so that no two centres share a cell or suppress each other
    keep = np.ones(n, bool)
    for i in range(n):
        d = np.hypot(*(boxes.centers_m[:i, :2] - boxes.centers_m[i, :2]).T)
        keep[i] = not (keep[:i] & (d < 6)).any()
    boxes = boxes.subset(keep)
    targets = build_targets(boxes, TINY)
    _, h, w = TINY.bev_shape_zyx
    outputs = []
    for t in targets:
        heat = torch.from_numpy(t.heatmap[None]).clamp(1e-6, 1 - 1e-6)
        reg = torch.zeros(1, 8, h * w)
        reg[0, :, torch.from_numpy(t.indices)] = torch.from_numpy(t.regression).T
        outputs.append(HeadOutput(torch.log(heat / (1 - heat)), reg.reshape(1, 8, h, w)))
    decoded = decode_frame(outputs, 0, TINY)
    iou = cuboid_iou_3d(boxes, decoded)
    assert len(decoded) == len(boxes)
    assert (iou.max(axis=1) > 0.999).all()
    assert (decoded.labels[iou.argmax(axis=1)] == boxes.labels).all()

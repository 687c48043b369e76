"""The CPU sparse convolutions against spconv's own (run on one torch thread, where they are exact)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
spconv = pytest.importorskip("spconv.pytorch")

from av_pipeline.detect.sparse_cpu import build_rulebook, run_sparse_sequential, sparse_conv, to_bev, to_dense, voxel_order  # noqa: E402


def _random_voxels(rng: np.random.Generator, shape_zyx: tuple[int, int, int], count: int, batch: int) -> np.ndarray:
    """Unique ``[b, z, y, x]`` rows, clustered (like objects in a sweep) and touching the grid's faces."""
    rows = []
    for b in range(batch):
        centres = rng.integers(0, shape_zyx, size=(8, 3))
        pts = np.concatenate([centres[rng.integers(0, 8, count)] + rng.integers(-3, 4, (count, 3)), [[0, 0, 0], np.array(shape_zyx) - 1]])
        pts = np.clip(pts, 0, np.array(shape_zyx) - 1)
        rows.append(np.column_stack([np.full(len(pts), b), pts]))
    return np.unique(np.concatenate(rows), axis=0).astype(np.int32)


def _spconv_reference(layer, features, coords, shape, batch):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv's CPU gather/scatter race with more threads
    try:
        out = layer(spconv.SparseConvTensor(features, torch.from_numpy(coords), list(shape), batch))
    finally:
        torch.set_num_threads(previous)
    return out


def _by_coords(features: torch.Tensor, coords: np.ndarray) -> dict[tuple[int, ...], np.ndarray]:
    return {tuple(c): f for c, f in zip(coords.tolist(), features.numpy())}


@pytest.mark.parametrize(
    "kind, kernel, stride, padding",
    [
        ("subm", 3, 1, 1),
        ("conv", 3, 2, 1),
        ("conv", (3, 1, 1), (2, 1, 1), 0),
        ("conv", 2, 2, 0),
        ("subm", (1, 3, 3), 1, (0, 1, 1)),
    ],
)
def test_one_layer_matches_spconv(kind, kernel, stride, padding):
    rng = np.random.default_rng(7)
    shape, batch, cin, cout = (9, 40, 36), 2, 5, 7
    coords = _random_voxels(rng, shape, 300, batch)
    features = torch.from_numpy(rng.normal(size=(len(coords), cin)).astype(np.float32))
    if kind == "subm":
        layer = spconv.SubMConv3d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
    else:
        layer = spconv.SparseConv3d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
    torch.nn.init.normal_(layer.bias)
    with torch.inference_mode():
        ref = _spconv_reference(layer, features, coords, shape, batch)
        as_tuple = lambda v: v if isinstance(v, tuple) else (v,) * 3  # noqa: E731
        book = build_rulebook(coords, shape, as_tuple(kernel), as_tuple(stride), as_tuple(padding), kind == "subm")
        ours = sparse_conv(features, layer.weight, book, layer.bias)
    assert book.out_shape_zyx == tuple(ref.spatial_shape)
    expected = _by_coords(ref.features, ref.indices.numpy())
    got = _by_coords(ours, book.out_coords)
    assert set(got) == set(expected)  # the same output voxels
    assert len(got) == len(book.out_coords)  # no duplicates
    worst = max(np.abs(got[c] - expected[c]).max() for c in got)
    assert worst <= 1e-5 * max(1.0, float(ref.features.abs().max()))
    # every pair joins voxels one kernel offset apart
    k = as_tuple(kernel)
    for index, (rows_in, rows_out) in enumerate(book.pairs):
        offset = np.array(np.unravel_index(index, k))
        src = coords[rows_in.numpy(), 1:]
        dst = book.out_coords[rows_out.numpy(), 1:] * np.array(as_tuple(stride)) - np.array(as_tuple(padding)) + offset
        np.testing.assert_array_equal(src, dst)
        assert len(np.unique(rows_out.numpy())) == len(rows_out)


def test_backbone_matches_spconv_bit_for_bit_on_the_shipped_weights():
    """The shipped detector's sparse backbone, our CPU path with 2 threads vs spconv with 1."""
    from av_pipeline.detect import Detector
    from av_pipeline.detect.points import frame_points_ego
    from av_pipeline.detect.targets import voxel_input
    from av_pipeline.readers import open_log
    from av_pipeline.synthetic import bundled_log

    with open_log(bundled_log().mcap) as reader:
        points = frame_points_ego(reader.load_frame(reader.list_frames()[0]))
    detector = Detector.from_pretrained(device="cpu")
    vox = voxel_input(points, detector.config)
    coords = np.column_stack([np.zeros(len(vox.coords_zyx), np.int32), vox.coords_zyx]).astype(np.int32)
    features = torch.from_numpy(vox.features)
    sparse = detector.model.sparse
    previous = torch.get_num_threads()
    with torch.inference_mode():
        torch.set_num_threads(1)
        try:
            ref = sparse(features, torch.from_numpy(coords), 1)
        finally:
            torch.set_num_threads(previous)
        torch.set_num_threads(2)
        try:
            ours = [sparse.forward_cpu(features, coords, 1) for _ in range(2)]
        finally:
            torch.set_num_threads(previous)
    assert len(coords) > 10_000 and ref.abs().max() > 1.0
    for out in ours:
        assert out.shape == ref.shape
        assert torch.equal(out, ref)


def test_run_sparse_sequential_shares_submanifold_rulebooks_and_dense_layout():
    rng = np.random.default_rng(3)
    shape = (6, 20, 20)
    coords = _random_voxels(rng, shape, 80, 1)
    features = torch.from_numpy(rng.normal(size=(len(coords), 4)).astype(np.float32))
    blocks = [
        spconv.SparseSequential(spconv.SubMConv3d(4, 6, 3, padding=1, bias=False, indice_key="a"), torch.nn.ReLU()),
        spconv.SparseSequential(spconv.SubMConv3d(6, 6, 3, padding=1, bias=False, indice_key="a")),
        spconv.SparseSequential(spconv.SparseConv3d(6, 3, 3, stride=2, padding=1, bias=False)),
    ]
    cache: dict = {}
    with torch.inference_mode():
        feats, out_coords, out_shape = run_sparse_sequential(blocks, features, coords, shape, cache)
        ref = _spconv_reference(spconv.SparseSequential(*blocks), features, coords, shape, 1)
        dense = to_dense(feats, out_coords, out_shape, 1)
    assert list(cache) == ["a"]
    assert torch.allclose(dense, ref.dense(), atol=1e-5)


def test_unsupported_layers_are_refused():
    coords = np.array([[0, 1, 1, 1]], np.int32)
    features = torch.ones(1, 2)
    dilated = spconv.SparseSequential(spconv.SubMConv3d(2, 2, 3, padding=2, dilation=2))
    with pytest.raises(NotImplementedError, match="dilation"):
        run_sparse_sequential([dilated], features, coords, (3, 3, 3), {})
    with pytest.raises(ValueError, match="submanifold"):
        build_rulebook(coords, (3, 3, 3), (3, 3, 3), (2, 2, 2), (1, 1, 1), subm=True)


def test_to_bev_is_the_dense_grid_with_height_folded_into_channels():
    rng = np.random.default_rng(5)
    shape = (3, 7, 9)
    coords = _random_voxels(rng, shape, 40, 2)
    features = torch.from_numpy(rng.normal(size=(len(coords), 4)).astype(np.float32))
    dense = to_dense(features, coords, shape, 2)  # (B, C, Z, Y, X)
    bev = to_bev(features, coords, shape, 2)
    assert bev.shape == (2, 4 * 3, 7, 9)
    assert bev.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(bev, dense.reshape(2, 12, 7, 9))


def test_voxel_order_sorts_by_batch_then_z_y_x():
    coords = np.array([[1, 0, 0, 0], [0, 2, 1, 1], [0, 0, 5, 3], [0, 0, 5, 1]], np.int32)
    order = voxel_order(coords, (4, 8, 8))
    assert order.tolist() == [3, 2, 1, 0]


def test_strided_outputs_are_the_same_by_byte_map_and_by_sorting(monkeypatch):
    import av_pipeline.detect.sparse_cpu as sparse_cpu

    coords = _random_voxels(np.random.default_rng(11), (9, 40, 36), 300, 2)
    by_map = build_rulebook(coords, (9, 40, 36), (3, 3, 3), (2, 2, 2), (1, 1, 1), subm=False)
    monkeypatch.setattr(sparse_cpu, "_BITMAP_CELLS", 0)
    by_sort = build_rulebook(coords, (9, 40, 36), (3, 3, 3), (2, 2, 2), (1, 1, 1), subm=False)
    np.testing.assert_array_equal(by_map.out_coords, by_sort.out_coords)
    assert len(np.unique(by_map.out_coords, axis=0)) == len(by_map.out_coords)

"""The lent-GPU bundle, as far as a CPU proves it: bench/gpu/mmcv_ext_torch.py (the
pure-PyTorch stand-in for mmcv's compiled ops) against the compiled ops of this machine's
mmcv, the shipped models with the stand-in in their place, and bench/bench_gpu.py."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, call_tool, load_tool

STAND_IN = os.path.join(REPO, 'bench', 'gpu', 'mmcv_ext_torch.py')


def _load_stand_in():
    spec = importlib.util.spec_from_file_location('mmcv_ext_torch', STAND_IN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stand_in = _load_stand_in()
real = pytest.importorskip('mmcv._ext', reason="mmcv's compiled ops are not installed")


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """One torch thread: intra-op threads on a busy 2-core machine spin for seconds on
    the stand-in's many small ops (36 ms of CPU for 2,500 boxes with one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _roi_align(ext, feat, rois, size, scale, sampling_ratio, pool_mode, aligned):
    out = feat.new_zeros(rois.shape[0], feat.shape[1], *size)
    arg = [feat.new_zeros(out.shape) if pool_mode == 0 else feat.new_zeros(0) for _ in 'yx']
    ext.roi_align_forward(feat, rois, out, arg[0], arg[1], aligned_height=size[0],
                          aligned_width=size[1], spatial_scale=scale,
                          sampling_ratio=sampling_ratio, pool_mode=pool_mode, aligned=aligned)
    return out, arg[0], arg[1]


def _rois(gen, count, side, batch):
    """RoIs in image pixels: inside, partly and wholly outside the map, tiny, thin, large."""
    corner = torch.rand(count, 2, generator=gen) * side * 1.4 - side * 0.2
    size = torch.rand(count, 2, generator=gen) ** 3 * side
    size[:count // 8] = 0.0  # empty boxes (aligned: no samples; legacy: widened to 1)
    size[count // 8:count // 4, 0] *= 0.02  # thin
    index = torch.randint(0, batch, (count, 1), generator=gen).float()
    return torch.cat([index, corner, corner + size], dim=1)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('pool_mode', [1, 0])
def test_roi_align_matches_mmcv(aligned, sampling_ratio, pool_mode):
    gen = torch.Generator().manual_seed(7)
    for stride, size in ((4, (7, 7)), (8, (14, 14)), (32, (7, 7)), (16, (3, 5))):
        feat = torch.randn(2, 6, 256 // stride + 1, 320 // stride, generator=gen)
        rois = _rois(gen, 64, 300, 2)
        want = _roi_align(real, feat, rois, size, 1 / stride, sampling_ratio, pool_mode, aligned)
        got = _roi_align(stand_in, feat, rois, size, 1 / stride, sampling_ratio, pool_mode,
                         aligned)
        for a, b in zip(want, got):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (stride, (a - b).abs().max())


def test_roi_align_in_chunks_and_without_rois(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    feat = torch.randn(1, 4, 40, 40, generator=gen)
    rois = _rois(gen, 50, 160, 1)
    want = _roi_align(real, feat, rois, (7, 7), 0.25, 0, 1, True)[0]
    monkeypatch.setattr(stand_in, 'ROI_CHUNK_ELEMENTS', 4 * 49 * 4 * 3)  # a few RoIs a chunk
    assert torch.allclose(_roi_align(stand_in, feat, rois, (7, 7), 0.25, 0, 1, True)[0], want,
                          atol=1e-5)
    empty = _roi_align(stand_in, feat, rois[:0], (7, 7), 0.25, 0, 1, True)[0]
    assert empty.shape == (0, 4, 7, 7)


def _boxes(gen, count, clusters, side=400.0):
    """Boxes around a few centres (much suppression), or spread out (clusters=0)."""
    if clusters:
        centre = torch.rand(clusters, 2, generator=gen) * side
        centre = centre[torch.randint(0, clusters, (count,), generator=gen)]
        centre += torch.randn(count, 2, generator=gen) * 4
    else:
        centre = torch.rand(count, 2, generator=gen) * side
    half = torch.rand(count, 2, generator=gen) * 20 + 2
    return torch.cat([centre - half, centre + half], dim=1)


@pytest.mark.parametrize('count,clusters', [(30, 0), (600, 0), (700, 12), (2500, 40)])
@pytest.mark.parametrize('threshold', [0.2, 0.5, 0.7])
@pytest.mark.parametrize('offset', [0, 1])
def test_nms_matches_mmcv(count, clusters, threshold, offset):
    gen = torch.Generator().manual_seed(count + clusters)
    boxes = _boxes(gen, count, clusters)
    scores = torch.randperm(count, generator=gen).float() / count  # no ties
    want = real.nms(boxes, scores, iou_threshold=threshold, offset=offset)
    got = stand_in.nms(boxes, scores, iou_threshold=threshold, offset=offset)
    assert torch.equal(got, want)
    assert len(want) < count or not clusters


def test_nms_degenerate_boxes():
    boxes = torch.tensor([[5., 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10], [0, 0, 10, 10],
                          [3, 3, 2, 8], [3, 3, 2, 8], [0, 0, 10, 0], [1, 1, 9, 9],
                          [-5, -5, -1, -1], [20, 20, 30, 30]])
    scores = torch.tensor([.9, .85, .8, .75, .7, .65, .6, .55, .5, .45])
    for offset in (0, 1):
        for threshold in (0.0, 0.3, 0.99):
            want = real.nms(boxes, scores, iou_threshold=threshold, offset=offset)
            assert torch.equal(stand_in.nms(boxes, scores, iou_threshold=threshold,
                                            offset=offset), want), (offset, threshold)
    assert stand_in.nms(boxes[:0], scores[:0], iou_threshold=0.5, offset=0).shape == (0,)


def test_other_ops_are_stubs_that_name_themselves():
    from mmcv.utils import ext_loader
    assert hasattr(stand_in, 'deform_conv_forward')
    assert not hasattr(stand_in, '__path__')  # not mistaken for a package
    with pytest.raises(NotImplementedError, match='roi_align_backward'):
        stand_in.roi_align_backward()
    assert ext_loader.load_ext  # what imports every op with the stand-in: next test


def test_every_mmcv_op_module_imports_with_the_stand_in():
    """load_ext asserts each name an mmcv.ops module asks for: all resolve (a new process,
    the stand-in as mmcv._ext before mmcv.ops is imported)."""
    code = (f'import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location("mmcv._ext", {STAND_IN!r})\n'
            f'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n'
            f'sys.modules["mmcv._ext"] = m\n'
            f'import mmcv.ops\n'
            f'assert all(sys.modules[f"mmcv.ops.{{op}}"].ext_module is m\n'
            f'           for op in ("nms", "roi_align"))\n'
            f'print(len([k for k in dir(mmcv.ops) if not k.startswith("_")]))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) > 50


@pytest.fixture
def ops_replaced(monkeypatch):
    """Every mmcv.ops module's ext_module replaced by the stand-in (any op it lacks raises)."""
    import importlib
    import pkgutil

    import mmcv.ops
    for info in pkgutil.iter_modules(mmcv.ops.__path__):
        module = importlib.import_module(f'mmcv.ops.{info.name}')
        if hasattr(module, 'ext_module'):
            monkeypatch.setattr(module, 'ext_module', stand_in)


def _sample_crop(side=160):
    from custom_modules.data.image_io import read_any_image
    import glob
    path = sorted(glob.glob(os.path.join(REPO, 'data', 'sample', 'stage1_train', '*',
                                         'images', '*.png')))[0]
    return np.ascontiguousarray(read_any_image(path)[:side, :side])


@pytest.mark.slow
@pytest.mark.parametrize('model,tta', [('nucleiseg_mrcnn', False), ('nucleiseg_mrcnn', True),
                                       ('nucleiseg_ensemble', False)])
def test_shipped_model_gives_the_same_labels_with_the_stand_in(model, tta, request):
    from custom_modules.inference.inferencer import NucleusInferencer
    img = _sample_crop()
    inferencer = NucleusInferencer(model, tta=tta, tile=0, diameter=None)
    want = inferencer.predict(img)
    request.getfixturevalue('ops_replaced')
    got = inferencer.predict(img)
    assert want['label_map'].max() > 0
    assert np.array_equal(got['label_map'], want['label_map'])
    assert np.allclose(got['scores'], want['scores'], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('model', ['nucleiseg_mrcnn', 'nucleiseg_unet', 'nucleiseg_ensemble'])
@pytest.mark.parametrize('tta', [False, True])
def test_the_device_reaches_every_part_of_a_shipped_model(model, tta):
    """What a CPU can show of ``device='cuda'``: on the meta device every parameter and every
    data preprocessor (which moves the inputs) follow (the ensemble's members stayed behind)."""
    from mmengine.model import BaseDataPreprocessor

    from custom_modules.inference.inferencer import NucleusInferencer
    predictor = NucleusInferencer(model, tta=tta, tile=0, diameter=None, device='meta').predictor
    parts = [predictor] + list(getattr(predictor, 'members', []))
    modules = [m for part in parts for m in part.modules()]
    assert {p.device.type for m in modules for p in m.parameters()} == {'meta'}
    assert {m._device.type for m in modules if isinstance(m, BaseDataPreprocessor)} == {'meta'}


def test_prepare_images_spreads_the_sizes(tmp_path):
    bench = load_tool('bench/bench_gpu.py')
    data = tmp_path / 'data'
    images = []
    for i, (h, w) in enumerate([(256, 256)] * 6 + [(360, 360)] * 3 + [(1024, 1024)]):
        name = f'id{i}/images/id{i}.png'
        (data / f'id{i}' / 'images').mkdir(parents=True)
        (data / name).write_bytes(b'png%d' % i)
        images.append(dict(file_name=name, height=h, width=w))
    fold = tmp_path / 'val.json'
    fold.write_text(json.dumps(dict(images=images)))
    paths = bench.prepare_images(str(tmp_path / 'out'), 4, str(fold), str(data))
    assert [os.path.basename(p) for p in paths] == ['00_id0.png', '01_id3.png', '02_id6.png',
                                                    '03_id9.png']
    assert bench.prepare_images(str(tmp_path / 'out'), 4, str(fold), str(data)) == paths


def test_bench_gpu_refuses_a_missing_folder_and_device(tmp_path):
    proc = call_tool('bench/bench_gpu.py', '--device', 'cpu', '--images', tmp_path,
                     check=False)
    assert proc.returncode == 1 and 'no PNG images' in proc.stderr
    if not torch.cuda.is_available():
        proc = call_tool('bench/bench_gpu.py', '--device', 'cuda', '--images', tmp_path,
                         check=False)
        assert proc.returncode == 1 and 'no CUDA GPU' in proc.stderr


@pytest.mark.slow
def test_bench_gpu_times_one_image_on_cpu(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / 'a.png'), _sample_crop(96))
    out = tmp_path / 'out'
    proc = call_tool('bench/bench_gpu.py', '--device', 'cpu', '--images', tmp_path,
                     '--models', 'nucleiseg_unet', '--out', out)
    result = json.loads((out / 'gpu_bench.json').read_text())
    assert result['models']['nucleiseg_unet']['tta']['images'] == 1
    assert 'nucleiseg_unet' in (out / 'gpu_bench.txt').read_text()
    assert 'CPU 1024 px' in proc.stdout

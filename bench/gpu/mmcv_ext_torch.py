"""A pure-PyTorch stand-in for mmcv 2.1.0's compiled ``mmcv._ext``: the two ops the shipped
models call at inference, and a stub for every other name.

A lent GPU machine has CUDA PyTorch but no mmcv, and compiling mmcv's CUDA ops there would
take most of its time; the pure-Python ``mmcv-lite`` wheel (the same Python files as
mmcv 2.1.0) plus this file installed as ``mmcv/_ext.py`` runs the models on any device.
What the shipped models call (``nucleiseg_mrcnn``, ``nucleiseg_unet``,
``nucleiseg_ensemble``, one view and TTA; ``tests/test_gpu_bundle.py`` checks the list):

- ``roi_align_forward``: ``mmcv.ops.RoIAlign`` (the Mask R-CNN's box and mask heads);
- ``nms``: ``mmcv.ops.nms`` / ``batched_nms`` (the RPN's proposals, the boxes per class).

Both follow mmcv's CPU kernels (``roi_align.cpp``, ``nms.cpp``) step for step in float32,
write their results where those do (``output``, ``argmax_y``/``argmax_x``; ``nms`` returns
the kept indices in descending score order) and run on the tensors' device. Any other op
is a stub that ``mmcv.utils.ext_loader.load_ext`` finds and that raises
``NotImplementedError`` naming itself when called (training needs ``roi_align_backward``).
"""
from typing import Callable

import torch

ROI_CHUNK_ELEMENTS = 1 << 24  # gathered values (4 corners each) per chunk of RoIs
NMS_BLOCK = 256  # boxes resolved together in nms (a fixed point on a block x block matrix)


def roi_align_forward(input: torch.Tensor, rois: torch.Tensor, output: torch.Tensor,
                      argmax_y: torch.Tensor, argmax_x: torch.Tensor, aligned_height: int,
                      aligned_width: int, spatial_scale: float, sampling_ratio: int,
                      pool_mode: int, aligned: bool) -> None:
    """RoIAlign into ``output`` (N, C, aligned_height, aligned_width); ``pool_mode`` 1: the
    mean of each bin's samples, 0: their maximum, its sample's (y, x) into ``argmax_y/x``."""
    if rois.numel() == 0:
        return
    height, width = input.shape[2:]
    flat = input.permute(0, 2, 3, 1).reshape(-1, input.shape[1])  # (B*H*W, C)
    grid = _grid(rois.to(input.dtype), aligned_height, aligned_width, spatial_scale,
                 sampling_ratio, aligned)
    per_roi = input.shape[1] * aligned_height * aligned_width * 4
    cells = (grid[0].clamp(min=1) * grid[1].clamp(min=1)).tolist()
    start = 0
    while start < len(cells):  # chunks of RoIs whose gathered samples fit the budget
        stop, most = start, 1
        while stop < len(cells) and (stop == start or
                                     (stop + 1 - start) * max(most, cells[stop]) * per_roi
                                     <= ROI_CHUNK_ELEMENTS):
            most = max(most, cells[stop])
            stop += 1
        values, count, coords = _roi_samples(
            flat, height, width, [g[start:stop] for g in grid], rois[start:stop, 0],
            aligned_height, aligned_width)
        if pool_mode == 1:
            out = values.sum(dim=(3, 5)) / count[:, None, None, None]
        else:
            out, arg_y, arg_x = _max_pool(values, coords)
            argmax_y[start:stop] = arg_y
            argmax_x[start:stop] = arg_x
        output[start:stop] = out
        start = stop


def _grid(rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned):
    """Per RoI: (samples per bin in y, in x, roi start y, x, bin size y, x), as mmcv has them."""
    offset = 0.5 if aligned else 0.0
    scale = torch.tensor(spatial_scale, dtype=rois.dtype, device=rois.device)
    start_w, start_h = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    roi_w, roi_h = rois[:, 3] * scale - offset - start_w, rois[:, 4] * scale - offset - start_h
    if aligned:
        if bool((roi_w < 0).any() | (roi_h < 0).any()):
            raise RuntimeError('ROIs in ROIAlign cannot have non-negative size!')
    else:  # mmcv: for backward compatibility only
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h = torch.ceil(roi_h / pooled_h).long()
        grid_w = torch.ceil(roi_w / pooled_w).long()
    return grid_h, grid_w, start_h, start_w, roi_h / pooled_h, roi_w / pooled_w


def _axis(start, bin_size, grid, pooled, most, size):
    """Sample coordinates along one axis, (n, pooled, most), and each one's two neighbours
    and weights, with mmcv's boundary rules; samples past a RoI's own grid are not valid."""
    step = torch.arange(pooled, device=start.device, dtype=start.dtype)
    sub = torch.arange(most, device=start.device, dtype=start.dtype)
    coord = (start[:, None, None] + step[None, :, None] * bin_size[:, None, None]) + (
        (sub + 0.5)[None, None, :] * bin_size[:, None, None] / grid.to(start.dtype)[:, None, None])
    valid = (sub[None, None, :] < grid[:, None, None]) & (coord >= -1.0) & (coord <= size)
    clamped = torch.where(valid, coord, torch.zeros_like(coord)).clamp(min=0)  # no NaN, inf
    low = clamped.long()
    top = low >= size - 1
    low = torch.where(top, torch.full_like(low, size - 1), low)
    high = torch.where(top, low, low + 1)
    clamped = torch.where(top, low.to(coord.dtype), clamped)
    frac = clamped - low
    return coord, valid, low, high, 1.0 - frac, frac


def _roi_samples(flat, height, width, grid, batch, pooled_h, pooled_w):
    """Bilinear values of every sample, (n, C, pooled_h, most_h, pooled_w, most_w), zero
    where a sample lies outside the map or past its RoI's grid; the sample count per RoI."""
    grid_h, grid_w, start_h, start_w, bin_h, bin_w = grid
    most_h, most_w = max(int(grid_h.max()), 1), max(int(grid_w.max()), 1)
    y, valid_y, y_low, y_high, hy, ly = _axis(start_h, bin_h, grid_h, pooled_h, most_h, height)
    x, valid_x, x_low, x_high, hx, lx = _axis(start_w, bin_w, grid_w, pooled_w, most_w, width)
    base = batch.long()[:, None, None, None, None] * (height * width)
    valid = (valid_y[:, :, :, None, None] & valid_x[:, None, None, :, :]).to(flat.dtype)
    values = 0
    for rows, wy in ((y_low, hy), (y_high, ly)):  # mmcv's order: w1 v1 + w2 v2 + w3 v3 + w4 v4
        for cols, wx in ((x_low, hx), (x_high, lx)):
            index = base + rows[:, :, :, None, None] * width + cols[:, None, None, :, :]
            weight = wy[:, :, :, None, None] * wx[:, None, None, :, :] * valid
            values = values + weight[..., None] * flat[index]
    count = (grid_h * grid_w).clamp(min=1).to(flat.dtype)
    return values.permute(0, 5, 1, 2, 3, 4), count, (y, x, grid_h, grid_w)


def _max_pool(values, coords):
    """mmcv's max mode: the largest sample of each bin (from -10000), and where it lies
    (-1 when no sample beats -10000); the first one in row-major sample order on ties."""
    y, x, grid_h, grid_w = coords
    n, channels, pooled_h, most_h, pooled_w, most_w = values.shape
    in_grid = ((torch.arange(most_h, device=values.device)[None, :, None] < grid_h[:, None, None])
               & (torch.arange(most_w, device=values.device)[None, None, :]
                  < grid_w[:, None, None]))  # (n, most_h, most_w)
    in_grid = in_grid[:, None, None, :, None, :].expand(n, 1, pooled_h, most_h, pooled_w, most_w)
    values = values.masked_fill(~in_grid, float('-inf'))
    per_bin = values.permute(0, 1, 2, 4, 3, 5).reshape(n, channels, pooled_h, pooled_w, -1)
    where = per_bin.argmax(dim=-1)  # the first of equal maxima, as mmcv's strict '>'
    best = per_bin.gather(-1, where[..., None])[..., 0]
    floor = torch.tensor(-10000.0, dtype=values.dtype, device=values.device)
    beats = best > floor
    iy, ix = where // most_w, where % most_w
    rows = torch.arange(pooled_h, device=values.device)[None, None, :, None]
    cols = torch.arange(pooled_w, device=values.device)[None, None, None, :]
    index = torch.arange(n, device=values.device)[:, None, None, None]
    arg_y = y[index, rows, iy]
    arg_x = x[index, cols, ix]
    out = torch.where(beats, best, floor)
    minus = torch.full_like(arg_y, -1.0)
    return out, torch.where(beats, arg_y, minus), torch.where(beats, arg_x, minus)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        offset: int) -> torch.Tensor:
    """Greedy NMS as mmcv's kernel: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a kept higher-scoring box exceeds the threshold
    (mmcv's float32 arithmetic: areas with ``offset``, NaN IoU suppresses nothing).
    Blocks of ``NMS_BLOCK`` sorted boxes are resolved by a fixed point on device (box j kept
    iff no kept earlier box of its block overlaps it; exact after at most block steps),
    then suppress every later box: no N x N matrix, few host synchronisations.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True)[1]
    sorted_boxes = boxes[order].float()
    threshold = torch.tensor(float(iou_threshold), dtype=torch.float32, device=boxes.device)
    count = sorted_boxes.shape[0]
    removed = torch.zeros(count, dtype=torch.bool, device=boxes.device)
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        block = _overlaps(sorted_boxes[start:stop], sorted_boxes[start:stop], offset) > threshold
        block = block.triu(1)
        keep = _fixed_point(block, ~removed[start:stop])
        removed[start:stop] = ~keep
        if stop < count and bool(keep.any()):
            later = _overlaps(sorted_boxes[start:stop][keep], sorted_boxes[stop:], offset)
            removed[stop:] |= (later > threshold).any(dim=0)
    return order[~removed]


def _overlaps(a: torch.Tensor, b: torch.Tensor, offset: int) -> torch.Tensor:
    """IoU of each box of ``a`` with each of ``b`` (len(a) x len(b)), as mmcv's CPU nms."""
    area_a = (a[:, 2] - a[:, 0] + offset) * (a[:, 3] - a[:, 1] + offset)
    area_b = (b[:, 2] - b[:, 0] + offset) * (b[:, 3] - b[:, 1] + offset)
    w = (torch.minimum(a[:, None, 2], b[None, :, 2])
         - torch.maximum(a[:, None, 0], b[None, :, 0]) + offset).clamp(min=0)
    h = (torch.minimum(a[:, None, 3], b[None, :, 3])
         - torch.maximum(a[:, None, 1], b[None, :, 1]) + offset).clamp(min=0)
    inter = w * h
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _fixed_point(suppresses: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Greedy keep flags of one block: ``suppresses[i, j]`` (i before j) and the boxes not
    removed by earlier blocks. Step t fixes the first t boxes, so it ends within the block."""
    keep = alive
    weights = suppresses.to(torch.float32)
    for _ in range(suppresses.shape[0] + 1):
        nxt = alive & ~((keep.to(torch.float32) @ weights) > 0)
        if torch.equal(nxt, keep):
            return keep
        keep = nxt
    return keep


def _stub(name: str) -> Callable:
    def op(*args, **kwargs):
        raise NotImplementedError(
            f'mmcv._ext.{name}: not in the pure-PyTorch stand-in (bench/gpu/mmcv_ext_torch.py), '
            'which implements roi_align_forward and nms only; install mmcv with its compiled ops')
    op.__name__ = name
    return op


def __getattr__(name: str) -> Callable:
    """Every other op ``load_ext`` asks for: a stub that raises when called."""
    if name.startswith('_'):
        raise AttributeError(name)
    return _stub(name)

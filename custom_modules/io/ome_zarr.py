"""Label images as OME-Zarr (zarr format 2, OME-NGFF 0.4), written all or nothing.

The layout of the NGFF *labels* specification, which napari's OME-Zarr reader
(napari-ome-zarr) opens as a labels layer::

    NAME.ome.zarr/                 root group (.zattrs: what made it)
        labels/                    .zattrs {"labels": ["nuclei"]}
            nuclei/                .zattrs {"multiscales": [...], "image-label": {...}}
                0/ 1/ 2/ ...       int32 arrays, chunks of CHUNK x CHUNK, "/" separated

Level ``k`` is every ``2**k``-th pixel of level 0 (nearest neighbour: labels
stay labels), down to a level whose longer side is at most ``CHUNK``. The
folder is built under ``NAME.ome.zarr.PID.tmp`` and renamed into place, so an
interrupted run leaves no folder under the final name; the temporary folders
of dead processes are removed by the next write into the same folder.
"""
import os
import shutil
from typing import Callable, Dict, List, Tuple

import numpy as np

from custom_modules.io.atomic import check_can_write, remove_stale_temps

CHUNK = 1024
MAX_LEVELS = 6
NGFF_VERSION = '0.4'


class PlacedFolder:
    """Marks, among an image's output files, a folder already written into place."""


def label_levels(shape: Tuple[int, int], chunk: int = CHUNK,
                 max_levels: int = MAX_LEVELS) -> List[Tuple[int, int]]:
    """``(H, W)`` of each level: halved until the longer side is at most ``chunk``."""
    levels = [tuple(shape)]
    while max(levels[-1]) > chunk and len(levels) < max_levels:
        h, w = levels[-1]
        levels.append((-(-h // 2), -(-w // 2)))
    return levels


def label_attrs(levels: List[Tuple[int, int]], name: str = 'nuclei') -> Dict:
    """The ``.zattrs`` of a label image (NGFF 0.4 ``multiscales`` and ``image-label``)."""
    datasets = [{'path': str(k), 'coordinateTransformations': [
        {'type': 'scale', 'scale': [float(2 ** k), float(2 ** k)]}]} for k in range(len(levels))]
    return {'multiscales': [{
        'version': NGFF_VERSION, 'name': name,
        'axes': [{'name': 'y', 'type': 'space'}, {'name': 'x', 'type': 'space'}],
        'datasets': datasets, 'type': 'nearest',
        'metadata': {'method': 'every 2nd pixel of the level above (nearest neighbour)'}}],
        'image-label': {'version': NGFF_VERSION}}


def write_label_zarr(path: str, shape: Tuple[int, int],
                     read_block: Callable[[int, int, int, int, int], np.ndarray],
                     attrs: Dict = None, name: str = 'nuclei', chunk: int = CHUNK) -> str:
    """Write an OME-Zarr label image at ``path``, all or nothing; return ``path``.

    Args:
        path: the ``*.ome.zarr`` folder (replaced if it exists).
        shape: ``(H, W)`` of the label map.
        read_block: ``read_block(y0, y1, x0, x1, step)``: the label map's
            ``[y0:y1:step, x0:x1:step]`` as int32 (level-0 coordinates).
        attrs: the root group's attributes (what made the labels).
        name: the label image's name in ``labels/``.
        chunk: chunk side.
    """
    import numcodecs
    import zarr
    tmp = f'{path}.{os.getpid()}.tmp'
    check_can_write([tmp])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent, folders=True)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        root = zarr.open_group(tmp, mode='w', zarr_format=2)
        root.attrs.update(attrs or {})
        labels = root.create_group('labels')
        labels.attrs['labels'] = [name]
        image = labels.create_group(name)
        levels = label_levels(shape, chunk)
        image.attrs.update(label_attrs(levels, name))
        for k, (h, w) in enumerate(levels):
            array = image.create_array(
                str(k), shape=(h, w), chunks=(min(chunk, h), min(chunk, w)), dtype='int32',
                fill_value=0, compressors=numcodecs.Blosc(cname='zstd', clevel=3),
                chunk_key_encoding={'name': 'v2', 'separator': '/'})
            step = 2 ** k
            for y in range(0, h, chunk):
                for x in range(0, w, chunk):
                    y1, x1 = min(y + chunk, h), min(x + chunk, w)
                    array[y:y1, x:x1] = read_block(y * step, y1 * step, x * step, x1 * step,
                                                   step)
        place_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def place_folder(tmp: str, path: str) -> None:
    """Rename the finished folder ``tmp`` to ``path``, replacing an older one (moved
    aside first: a kill in between leaves only temporary names, swept later)."""
    old = None
    if os.path.lexists(path):
        old = f'{path}.old.{os.getpid()}.tmp'
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) else os.remove(old)

"""data_prep: masks -> COCO JSON -> masks, CSV sources, folds, bad input."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from conftest import call_tool, random_label_map, render, write_layout
from custom_modules.structures.rle import coco_decode, encode_label_map
from data_prep.folds import assign_folds


def prepare(src, out, *extra, check=True):
    return call_tool('data_prep/prepare_dsb.py', str(src), str(out), *extra, check=check)


def decoded(out_dir, name='full.json'):
    """{ImageId: label map rebuilt from the JSON's RLEs}."""
    with open(osp.join(out_dir, name)) as f:
        coco = json.load(f)
    maps = {}
    for im in coco['images']:
        label = np.zeros((im['height'], im['width']), np.int32)
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        for k, ann in enumerate(anns, start=1):
            mask = coco_decode(ann['segmentation'])
            assert not (label[mask] > 0).any(), 'annotations overlap'
            assert ann['area'] == mask.sum()
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            label[mask] = k
        maps[im['image_id']] = label
    return coco, maps


def same_partition(a, b):
    """Two label maps describe the same instances (labels may be renumbered)."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    pairs = set(zip(a[a > 0].tolist(), b[b > 0].tolist()))
    return len(pairs) == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def test_masks_roundtrip_pixel_exact(synthetic_set, tmp_path):
    src, labels = synthetic_set
    out = tmp_path / 'out'
    proc = prepare(src, out, '--folds', '2')
    assert 'images: 8' in proc.stdout and 'nuclei:' in proc.stdout
    coco, maps = decoded(out)
    assert coco['categories'] == [{'id': 1, 'name': 'nucleus'}]
    assert [im['id'] for im in coco['images']] == list(range(1, 9))
    for image_id, label in labels.items():
        assert same_partition(maps[image_id], label), image_id
        im = next(i for i in coco['images'] if i['image_id'] == image_id)
        assert im['file_name'] == f'{image_id}/images/{image_id}.png'
    # ids are stable: a second run writes the same JSON
    prepare(src, tmp_path / 'again', '--folds', '2')
    assert (out / 'full.json').read_text() == (tmp_path / 'again' / 'full.json').read_text()


def test_overlaps_empty_and_multichannel_masks(tmp_path):
    label = np.zeros((20, 20), np.int32)
    label[2:8, 2:8], label[10:16, 10:16] = 1, 2
    src = tmp_path / 'src'
    write_layout(str(src), [label, label.copy()])
    mdir = src / 'img000' / 'masks'
    over = np.zeros((20, 20), np.uint8)
    over[6:10, 6:10] = 255  # overlaps mask 1 by 4 pixels, keeps 12 of its own
    cv2.imwrite(str(mdir / 'm900.png'), over)
    cv2.imwrite(str(mdir / 'm901.png'), np.zeros((20, 20), np.uint8))  # empty
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[17:19, 0:4, 1] = 255  # a multi-channel mask, only green set
    cv2.imwrite(str(mdir / 'm902.png'), rgb)
    proc = prepare(src, tmp_path / 'out2', '--folds', '2')
    assert '1 empty masks dropped' in proc.stdout
    assert '4 overlapping pixels' in proc.stdout
    _, maps = decoded(tmp_path / 'out2')
    got = maps['img000']
    assert got.max() == 4
    assert (got > 0).sum() == 36 + 36 + 12 + 8


def test_image_formats_grey_rgba_16bit(tmp_path):
    rng = np.random.default_rng(3)
    labels = [random_label_map(rng) for _ in range(3)]
    imgs = [render(labels[0], rng)[:, :, 0],  # grey
            render(labels[1], rng),  # RGBA
            render(labels[2], rng)[:, :, :3].astype(np.uint16) * 257]  # 16-bit colour
    write_layout(str(tmp_path / 'src'), labels, images=imgs)
    prepare(tmp_path / 'src', tmp_path / 'out', '--folds', '3')
    coco, maps = decoded(tmp_path / 'out')
    depth = {im['image_id']: (im['channels'], im['bit_depth']) for im in coco['images']}
    assert depth == {'img000': (1, 8), 'img001': (4, 8), 'img002': (3, 16)}
    from custom_modules.data.image_io import read_image_file
    from custom_modules.data.intensity import to_model_input
    for im in coco['images']:
        x = to_model_input(read_image_file(str(tmp_path / 'src' / im['file_name'])))
        assert x.dtype == np.uint8 and x.shape == (im['height'], im['width'], 3)
        assert x.max() > 150  # 16-bit rescaled, not truncated to black


def test_csv_source_matches_layout(synthetic_set, tmp_path):
    src, labels = synthetic_set
    lines = ['ImageId,EncodedPixels,Height,Width']
    for image_id, label in labels.items():
        for text in encode_label_map(label).values():
            lines.append(f'{image_id},{text},{label.shape[0]},{label.shape[1]}')
    csv_path = tmp_path / 'labels.csv'
    csv_path.write_text('\n'.join(lines) + '\n')
    prepare(csv_path, tmp_path / 'from_csv', '--images', src, '--folds', '2')
    prepare(src, tmp_path / 'from_dir', '--folds', '2')
    _, a = decoded(tmp_path / 'from_csv')
    _, b = decoded(tmp_path / 'from_dir')
    assert a.keys() == b.keys()
    for image_id in a:
        assert np.array_equal(a[image_id], b[image_id])


def test_images_only(synthetic_set, tmp_path):
    src, _ = synthetic_set
    test_src = tmp_path / 'stage1_test'
    for image_id in os.listdir(src):
        shutil.copytree(osp.join(src, image_id, 'images'), test_src / image_id / 'images')
    proc = prepare(test_src, tmp_path / 'out')
    assert 'images-only' in proc.stdout
    coco = json.loads((tmp_path / 'out' / 'full.json').read_text())
    assert 'annotations' not in coco and len(coco['images']) == 8
    assert not (tmp_path / 'out' / 'train_fold0.json').exists()


def test_folds_keep_groups_and_cover_every_image(synthetic_set, tmp_path):
    src, labels = synthetic_set
    groups = tmp_path / 'groups.csv'
    groups.write_text('img_id,mosaic_idx\nimg000,7\nimg001,7\nimg002,7\nimg003,\nimg004,9\n'
                      'img005,9\n')
    for fold in range(3):
        prepare(src, tmp_path / f'f{fold}', '--groups', str(groups), '--folds', '3',
                '--fold', str(fold))
        train = json.loads((tmp_path / f'f{fold}' / f'train_fold{fold}.json').read_text())
        val = json.loads((tmp_path / f'f{fold}' / f'val_fold{fold}.json').read_text())
        t = {im['image_id'] for im in train['images']}
        v = {im['image_id'] for im in val['images']}
        assert t | v == set(labels) and not t & v
        for group in ({'img000', 'img001', 'img002'}, {'img004', 'img005'}):
            assert group <= t or group <= v
        ids = {im['id'] for im in val['images']}
        assert all(a['image_id'] in ids for a in val['annotations'])


def test_assign_folds_invariants():
    rng = np.random.default_rng(0)
    ids = [f'i{n}' for n in range(300)]
    strata = {i: rng.choice(['a', 'b', 'c']) for i in ids}
    groups = {i: str(rng.integers(0, 40)) for i in ids[:200]}
    folds = assign_folds(ids, strata, 5, groups, seed=1)
    assert set(folds) == set(ids) and set(folds.values()) == set(range(5))
    by_group = {}
    for i, g in groups.items():
        by_group.setdefault(g, set()).add(folds[i])
    assert all(len(f) == 1 for f in by_group.values())
    with pytest.raises(ValueError, match='cannot fill'):
        assign_folds(ids[:3], strata, 5)


def _bad(tmp_path, synthetic_set, breaker):
    src, _ = synthetic_set
    culprit = breaker(src)
    out = tmp_path / 'out'
    proc = prepare(src, out, '--folds', '2', check=False)
    assert proc.returncode != 0
    assert culprit in proc.stderr, proc.stderr
    assert not out.exists() or not [p for p in os.listdir(out) if p.endswith('.json')]


def test_bad_truncated_png(tmp_path, synthetic_set):
    def breaker(src):
        path = osp.join(src, 'img003', 'images', 'img003.png')
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 2])
        return 'img003.png: truncated'
    _bad(tmp_path, synthetic_set, breaker)


def test_bad_unreadable_png(tmp_path, synthetic_set):
    def breaker(src):
        path = osp.join(src, 'img002', 'masks', 'm001.png')
        open(path, 'wb').write(b'not a png at all')
        return 'm001.png: not a decodable image'
    _bad(tmp_path, synthetic_set, breaker)


def test_bad_mask_size(tmp_path, synthetic_set):
    def breaker(src):
        cv2.imwrite(osp.join(src, 'img001', 'masks', 'm001.png'), np.zeros((10, 10), np.uint8))
        return 'm001.png: mask is 10x10'
    _bad(tmp_path, synthetic_set, breaker)


def test_bad_missing_images_folder(tmp_path, synthetic_set):
    def breaker(src):
        shutil.rmtree(osp.join(src, 'img005', 'images'))
        return 'img005: missing images/ folder'
    _bad(tmp_path, synthetic_set, breaker)


def test_bad_duplicated_image_id(tmp_path, synthetic_set):
    def breaker(src):
        shutil.copytree(osp.join(src, 'img004'), osp.join(src, 'IMG004'))
        return 'duplicated ImageId'
    _bad(tmp_path, synthetic_set, breaker)


@pytest.mark.parametrize('row, message', [
    ('img000,1 2 3,64,80', 'row 3 (ImageId img000): EncodedPixels has an odd number'),
    ('img000,9 2 1 2,64,80', 'row 3 (ImageId img000): EncodedPixels runs are not sorted'),
    ('img000,x 2,64,80', 'row 3 (ImageId img000): EncodedPixels holds a value'),
    ('img000,1 9999999,64,80', 'row 3 (ImageId img000): EncodedPixels runs past'),
    ('img000,1 99999999999999999999,64,80', 'row 3 (ImageId img000): value out of range'),
    ('img000,9223372036854775800 100,64,80', 'row 3 (ImageId img000): value out of range'),
    ('img000,2 9223372036854775807,64,80', 'row 3 (ImageId img000): value out of range'),
])
def test_bad_rle_rows(synthetic_set, tmp_path, row, message):
    src, labels = synthetic_set
    good = next(iter(encode_label_map(labels['img000']).values()))
    csv_path = tmp_path / 'labels.csv'  # two images, or 2 folds cannot be filled
    csv_path.write_text(f'ImageId,EncodedPixels,Height,Width\nimg000,{good},64,80\n{row}\n'
                        'img001,1 2,72,80\n')
    out = tmp_path / 'out'
    proc = call_tool('data_prep/prepare_dsb.py', str(csv_path), str(out), '--images', src,
                     '--folds', '2', check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert 'labels.csv: ' + message in proc.stderr, proc.stderr
    assert not out.exists() or not os.listdir(out)


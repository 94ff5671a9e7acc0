"""Several classes end to end: data_prep, dataset, config check, metric, exporter."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config

from test_data_prep import decoded
from custom_modules.data.datasets import NucleusDataset
from custom_modules.engine.config_check import check_data_paths, model_num_classes
from custom_modules.evaluation.metric import DSBMetric
from custom_modules.io.exporters import coco_results
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.rle import coco_encode, encode_label_map, parse_rle, run_indices
from data_prep import prepare_dsb

CLASSES = ('astro', 'cort', 'shsy5y')


def class_of(image_id, label):
    """The synthetic class of instance ``label`` of an image."""
    return CLASSES[(int(image_id[-3:]) + label) % 3]


def run(capsys, *argv):
    """prepare_dsb.main in this process; ``(exit code, stderr)``."""
    code = prepare_dsb.main([str(a) for a in argv] + ['--workers', '1'])
    return code, capsys.readouterr().err


def check_classes(out_dir, labels):
    """Every instance of full.json has its synthetic class; categories are ids 1..3."""
    coco, maps = decoded(out_dir)
    assert coco['categories'] == [{'id': i, 'name': n} for i, n in enumerate(CLASSES, 1)]
    names = {c['id']: c['name'] for c in coco['categories']}
    for im in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        for k, ann in enumerate(anns, start=1):  # label k of the decoded map
            ys, xs = np.nonzero(maps[im['image_id']] == k)
            original = labels[im['image_id']][ys[0], xs[0]]
            assert names[ann['category_id']] == class_of(im['image_id'], original)
    return coco, maps


def test_kaggle_csv_with_a_class_column(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    lines = ['ImageId,EncodedPixels,Height,Width,class']
    for image_id, label in labels.items():
        for k, text in encode_label_map(label).items():
            lines.append(f'{image_id},{text},{label.shape[0]},{label.shape[1]},'
                         f'{class_of(image_id, k)}')
    (tmp_path / 'labels.csv').write_text('\n'.join(lines) + '\n')
    out = tmp_path / 'out'
    code, err = run(capsys, tmp_path / 'labels.csv', out, '--images', src, '--folds', '2',
                    '--class-column', 'class')
    assert code == 0, err
    coco, _ = check_classes(out, labels)
    val = json.loads((out / 'val_fold0.json').read_text())
    assert val['categories'] == coco['categories']
    # a missing class column is named
    code, err = run(capsys, tmp_path / 'labels.csv', tmp_path / 'o2', '--images', src,
                    '--class-column', 'cell_type')
    assert code == 2 and "labels.csv: no class column 'cell_type'" in err


def sartorius(src, labels, tmp_path, swap=False):
    """A Sartorius-style CSV (row-major RLE, width before height) of the synthetic set."""
    images = tmp_path / 'train'
    images.mkdir()
    lines = ['id,annotation,width,height,cell_type,plate_time']
    for image_id, label in labels.items():
        os.link(osp.join(src, image_id, 'images', image_id + '.png'), images / f'{image_id}.png')
        h, w = label.shape
        if swap:
            h, w = w, h
        for k, text in encode_label_map(label.T).items():  # column-major of .T = row-major
            lines.append(f'{image_id},{text},{w},{h},{class_of(image_id, k)},11h30m00s')
    path = tmp_path / 'train.csv'
    path.write_text('\n'.join(lines) + '\n')
    return path, images


def test_sartorius_layout_row_major(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    csv_path, images = sartorius(src, labels, tmp_path)
    out = tmp_path / 'out'
    code, err = run(capsys, csv_path, out, '--images', images, '--folds', '2',
                    '--class-column', 'cell_type')
    assert code == 0, err
    _, maps = check_classes(out, labels)
    for image_id, label in labels.items():
        assert np.array_equal(maps[image_id] > 0, label > 0)
    code, _ = run(capsys, csv_path, tmp_path / 'explicit', '--images', images, '--folds', '2',
                  '--class-column', 'cell_type', '--rle-order', 'row')
    assert code == 0
    assert (tmp_path / 'explicit' / 'full.json').read_text() == (out / 'full.json').read_text()


def test_wrong_rle_order_is_refused(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    csv_path, images = sartorius(src, labels, tmp_path)
    out = tmp_path / 'out'
    code, err = run(capsys, csv_path, out, '--images', images, '--folds', '2',
                    '--rle-order', 'column')
    assert code == 2 and 'train.csv: ImageId img000: the runs look numbered row-major' in err, err
    assert 'use --rle-order row' in err and not out.exists()
    # a DSB (column-major) CSV read row-major is refused the same way
    lines = ['ImageId,EncodedPixels'] + [f'{i},{t}' for i, label in labels.items()
                                         for t in encode_label_map(label).values()]
    (tmp_path / 'dsb.csv').write_text('\n'.join(lines) + '\n')
    code, err = run(capsys, tmp_path / 'dsb.csv', out, '--images', src, '--rle-order', 'row')
    assert code == 2 and 'use --rle-order column' in err, err


def test_swapped_width_and_height_are_named(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    csv_path, images = sartorius(src, labels, tmp_path, swap=True)
    code, err = run(capsys, csv_path, tmp_path / 'out', '--images', images, '--folds', '2')
    assert code == 2 and 'train.csv: ImageId img000: Height/Width (80, 64) differ' in err, err
    assert '(swapped?)' in err


def test_row_major_runs_decode_like_the_transpose():
    label = np.zeros((5, 7), np.int32)
    label[1:4, 2:6] = 1
    label[4, 0] = 1
    runs = parse_rle(encode_label_map(label.T)[1], label.shape, 'row')
    flat = np.zeros(label.size, bool)
    flat[run_indices(runs)] = True
    assert np.array_equal(flat.reshape(label.shape, order='F'), label > 0)
    with pytest.raises(ValueError, match='RLE order must be one of'):
        parse_rle('1 2', (5, 7), 'diagonal')


def test_class_map_for_the_folder_layout(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    rows = [f'{image_id},{CLASSES[i % 3]}' for i, image_id in enumerate(sorted(labels))]
    (tmp_path / 'classes.csv').write_text('image_id,class\n' + '\n'.join(rows) + '\n')
    out = tmp_path / 'out'
    code, err = run(capsys, src, out, '--folds', '2', '--class-map', tmp_path / 'classes.csv')
    assert code == 0, err
    coco = json.loads((out / 'full.json').read_text())
    names = {c['id']: c['name'] for c in coco['categories']}
    by_image = {im['id']: im['image_id'] for im in coco['images']}
    expected = {image_id: CLASSES[i % 3] for i, image_id in enumerate(sorted(labels))}
    for ann in coco['annotations']:
        assert names[ann['category_id']] == expected[by_image[ann['image_id']]]
    # an image missing from the map is refused, naming the map
    (tmp_path / 'short.csv').write_text('image_id,class\n' + '\n'.join(rows[:-1]) + '\n')
    code, err = run(capsys, src, tmp_path / 'o2', '--class-map', tmp_path / 'short.csv')
    assert code == 2 and 'short.csv: no class for ImageId img007' in err, err
    # the test set can take the training set's categories
    code, err = run(capsys, src, tmp_path / 'test', '--images-only', '--categories-from',
                    out / 'full.json')
    assert code == 0, err
    test = json.loads((tmp_path / 'test' / 'full.json').read_text())
    assert test['categories'] == coco['categories']


def test_without_classes_one_nucleus_category(synthetic_set, tmp_path, capsys):
    src, _ = synthetic_set
    code, err = run(capsys, src, tmp_path / 'out', '--folds', '2')
    assert code == 0, err
    coco = json.loads((tmp_path / 'out' / 'full.json').read_text())
    assert coco['categories'] == [{'id': 1, 'name': 'nucleus'}]
    assert {a['category_id'] for a in coco['annotations']} == {1}


def three_class_json(tmp_path):
    """A tiny labelled COCO JSON with three categories; ``(path, image folder)``."""
    img = np.zeros((16, 16, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    anns = []
    for k, cat in enumerate((3, 1, 2)):
        mask = np.zeros((16, 16), np.uint8)
        mask[1:4, 1 + 5 * k:4 + 5 * k] = 1
        anns.append(dict(id=k + 1, image_id=1, category_id=cat, segmentation=coco_encode(mask),
                         area=9, iscrowd=0, bbox=[1 + 5 * k, 1, 3, 3]))
    cats = [{'id': i, 'name': n} for i, n in enumerate(CLASSES, 1)]
    coco = dict(images=[dict(id=1, file_name='a.png', height=16, width=16, image_id='a')],
                annotations=anns, categories=cats)
    path = tmp_path / 'three.json'
    path.write_text(json.dumps(coco))
    return path, tmp_path


def test_dataset_takes_classes_from_the_json(tmp_path):
    path, images = three_class_json(tmp_path)
    ds = NucleusDataset(ann_file=str(path), data_prefix=dict(img=str(images) + '/'), pipeline=[])
    assert ds.metainfo['classes'] == CLASSES and ds.metainfo['category_ids'] == [1, 2, 3]
    assert len(ds.metainfo['palette']) == 3
    assert [i['bbox_label'] for i in ds.get_data_info(0)['instances']] == [2, 0, 1]
    sub = NucleusDataset(ann_file=str(path), data_prefix=dict(img=str(images) + '/'), pipeline=[],
                         metainfo=dict(classes=('shsy5y', 'astro')))
    assert sub.metainfo['classes'] == ('astro', 'shsy5y') and sub.metainfo['category_ids'] == [1, 3]
    with pytest.raises(ValueError, match=r"three\.json: metainfo classes \['glia'\]"):
        NucleusDataset(ann_file=str(path), data_prefix=dict(img=str(images) + '/'), pipeline=[],
                       metainfo=dict(classes=('glia', )))


def test_num_classes_mismatch_fails_before_training(tmp_path):
    path, images = three_class_json(tmp_path)
    cfg = Config.fromfile('configs/dsb_mrcnn_smoke.py')
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].dataset.ann_file = str(path)
        cfg[loader].dataset.data_prefix = dict(img=str(images) + '/')
    with pytest.raises(ValueError) as info:
        check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    message = str(info.value)
    assert 'model.roi_head.bbox_head.num_classes = 1' in message
    assert f'{path} (train_dataloader.dataset.ann_file) has 3 classes' in message
    cfg.model.roi_head.bbox_head.num_classes = cfg.model.roi_head.mask_head.num_classes = 3
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    # other model types: single-stage heads, wrappers, a top-level num_classes
    assert model_num_classes(dict(type='TTA', module=dict(bbox_head=dict(num_classes=2)))) == [
        ('model.module.bbox_head.num_classes', 2)]
    assert model_num_classes(dict(num_classes=4, roi_head=dict(bbox_head=[
        dict(num_classes=3)]))) == [('model.roi_head.bbox_head.0.num_classes', 3),
                                    ('model.num_classes', 4)]


def square(shape, y, x, size):
    m = np.zeros(shape, bool)
    m[y:y + size, x:x + size] = True
    return m


def test_metric_scores_each_class():
    shape = (32, 32)
    a, b, c = square(shape, 1, 1, 8), square(shape, 16, 16, 8), square(shape, 1, 20, 6)
    sample = dict(ori_shape=shape, img_id=0,
                  gt_instances=dict(masks=BitmapMasks(np.stack([a, b]).astype(np.uint8), *shape),
                                    labels=torch.tensor([0, 1])),
                  # a right; b found but called class 2; c an extra of class 0
                  pred_instances=dict(masks=torch.as_tensor(np.stack([a, b, c])),
                                      scores=torch.tensor([0.9, 0.8, 0.7]),
                                      labels=torch.tensor([0, 2, 0])))
    metric = DSBMetric()
    metric.dataset_meta = dict(classes=CLASSES, has_annotations=True)
    metric.process({}, [sample])
    result = metric.compute_metrics(metric.results)
    assert result['score'] == pytest.approx(2 / 3)  # class-agnostic: TP 2, FP 1
    assert result['score_class_astro'] == pytest.approx(0.5)  # TP a, FP c
    assert result['score_class_cort'] == 0.0 and result['score_class_shsy5y'] == 0.0
    single = DSBMetric()
    single.dataset_meta = dict(classes=('nucleus', ), has_annotations=True)
    single.process({}, [dict(sample, gt_instances=dict(sample['gt_instances'],
                                                       labels=torch.tensor([0, 0])),
                             pred_instances=dict(sample['pred_instances'],
                                                 labels=torch.tensor([0, 0, 0])))])
    assert not [k for k in single.compute_metrics(single.results) if k.startswith('score_class')]


def test_coco_results_carry_the_predicted_class():
    label_map = np.zeros((8, 8), np.int32)
    label_map[0:2, 0:2], label_map[4:6, 4:6], label_map[0:2, 5:7] = 1, 2, 3
    pred = LabelMapPrediction(label_map, np.array([0.9, 0.8, 0.7]), np.array([2, 0, 1]))
    assert [r['category_id'] for r in coco_results(5, 'x', pred)] == [3, 1, 2]
    mapped = coco_results(5, 'x', pred, category_ids=[10, 20, 30])
    assert [r['category_id'] for r in mapped] == [30, 10, 20]
    with pytest.raises(ValueError, match='predicted class 2 has no category id'):
        coco_results(5, 'x', pred, category_ids=[10, 20])


def test_image_kind_as_the_class(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    ids = sorted(labels)
    paths = [osp.join(src, i, 'images', i + '.png') for i in ids[:2]]
    grey = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths]
    cv2.imwrite(paths[0], 255 - grey[0])  # brightfield-like
    cv2.imwrite(paths[1], np.stack([grey[1], grey[1] // 2, grey[1] // 3], axis=-1))  # colour
    out = tmp_path / 'out'
    code, err = run(capsys, src, out, '--folds', '2', '--class-by-kind')
    assert code == 0, err
    coco = json.loads((out / 'full.json').read_text())
    assert coco['categories'] == [{'id': 1, 'name': 'colour'}, {'id': 2, 'name': 'grey_bright'},
                                  {'id': 3, 'name': 'grey_dark'}]
    names = {c['id']: c['name'] for c in coco['categories']}
    kinds = {im['id']: im['kind'] for im in coco['images']}
    assert {kinds[i] for i in kinds} == {'colour', 'grey_bright', 'grey_dark'}
    for ann in coco['annotations']:
        assert names[ann['category_id']] == kinds[ann['image_id']]
    with pytest.raises(SystemExit):
        prepare_dsb.parse_args([src, str(tmp_path / 'o2'), '--class-by-kind', '--class-map', 'x.csv'])

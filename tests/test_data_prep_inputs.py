"""data_prep on careless inputs: empty masks/ folders, Sartorius classes, too few images for folds."""
import json
import os
import shutil

from data_prep import prepare_dsb
from test_classes import CLASSES, check_classes, sartorius


def run(capsys, *argv):
    """prepare_dsb.main in this process; ``(exit code, stdout, stderr)``."""
    code = prepare_dsb.main([str(a) for a in argv] + ['--workers', '1'])
    out, err = capsys.readouterr()
    return code, out, err


def test_empty_masks_folder_refused_unless_allowed(synthetic_set, tmp_path, capsys):
    src, _ = synthetic_set
    masks = os.path.join(src, 'img002', 'masks')
    shutil.rmtree(masks)
    os.mkdir(masks)
    out = tmp_path / 'out'
    code, _, err = run(capsys, src, out, '--folds', '2')
    lines = [line for line in err.splitlines() if line.startswith('error')]
    assert code == 2 and lines == [f'error: {masks}: masks/ folder without mask PNGs (use '
                                   '--allow-empty to keep images without nuclei)'], err
    assert not out.exists()
    code, _, err = run(capsys, src, out, '--folds', '2', '--allow-empty')
    assert code == 0, err
    coco = json.loads((out / 'full.json').read_text())
    empty = [im['id'] for im in coco['images'] if im['image_id'] == 'img002']
    assert len(coco['images']) == 8 and not [a for a in coco['annotations']
                                              if a['image_id'] in empty]


def test_sartorius_cell_type_is_the_class_by_default(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    csv_path, images = sartorius(src, labels, tmp_path)
    out = tmp_path / 'out'
    code, stdout, err = run(capsys, csv_path, out, '--images', images, '--folds', '2')
    assert code == 0, err
    assert "sartorius layout: the class of each instance is its 'cell_type' column" in stdout
    coco, _ = check_classes(out, labels)
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    code, stdout, err = run(capsys, csv_path, tmp_path / 'one', '--images', images, '--folds', '2',
                            '--class-column', 'none')
    assert code == 0 and 'sartorius layout' not in stdout, err
    one = json.loads((tmp_path / 'one' / 'full.json').read_text())
    assert one['categories'] == [{'id': 1, 'name': 'nucleus'}]


def test_too_few_images_for_folds_still_get_full_json(synthetic_set, tmp_path, capsys):
    src, _ = synthetic_set
    for image_id in ('img003', 'img004', 'img005', 'img006', 'img007'):
        shutil.rmtree(os.path.join(src, image_id))
    groups = tmp_path / 'groups.csv'
    groups.write_text('img_id,mosaic_idx\n' + ''.join(f'img{i:03d},1\n' for i in range(3)))
    out = tmp_path / 'out'
    code, stdout, err = run(capsys, src, out, '--folds', '5', '--groups', groups)
    assert code == 0, err
    assert 'folds skipped: 1 groups cannot fill 5 folds; only full.json is written' in stdout
    assert os.listdir(out) == ['full.json']
    assert len(json.loads((out / 'full.json').read_text())['annotations']) > 0
    code, stdout, err = run(capsys, src, tmp_path / 'one', '--folds', '1')
    assert code == 0 and 'folds skipped: need at least 2 folds, got 1' in stdout, err
    assert os.listdir(tmp_path / 'one') == ['full.json']

"""data_prep/merge_coco.py: one training set from several COCO files, ids renumbered."""
import json
import os

from conftest import call_tool

CATS = [dict(id=1, name='nucleus')]


def coco(names, per_image=2, cats=CATS):
    images = [dict(id=10 + i, file_name=n, height=8, width=8, kind='grey_dark')
              for i, n in enumerate(names)]
    anns = [dict(id=100 + 10 * i + j, image_id=10 + i, category_id=1, area=4, iscrowd=0,
                 bbox=[0, 0, 2, 2], segmentation=dict(size=[8, 8], counts='0'))
            for i in range(len(names)) for j in range(per_image)]
    return dict(images=images, annotations=anns, categories=cats)


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_merge_renumbers_and_places_images(tmp_path):
    a = write(tmp_path / 'a.json', coco(['x.png', 'y.png']))
    b = write(tmp_path / 'b.json', coco(['x.png'], per_image=3))
    mine = tmp_path / 'mine'
    mine.mkdir()
    out = tmp_path / 'out' / 'merged.json'
    proc = call_tool('data_prep/merge_coco.py', out, a, f'{b}={mine}')
    assert proc.returncode == 0 and '3 images, 7 nuclei from 2 files' in proc.stdout
    merged = json.loads(out.read_text())
    assert [im['id'] for im in merged['images']] == [1, 2, 3]
    assert [im['file_name'] for im in merged['images']] == [
        'x.png', 'y.png', os.path.join(str(mine), 'x.png')]
    assert [a['id'] for a in merged['annotations']] == list(range(1, 8))
    assert [a['image_id'] for a in merged['annotations']] == [1, 1, 2, 2, 3, 3, 3]
    assert merged['images'][2]['kind'] == 'grey_dark' and merged['categories'] == CATS


def test_merge_refuses_in_one_line_and_writes_nothing(tmp_path):
    a = write(tmp_path / 'a.json', coco(['x.png']))
    out = tmp_path / 'merged.json'
    cases = [(write(tmp_path / 'c.json', coco(['z.png'], cats=[dict(id=1, name='cell')])),
              'differ from'),
             (a, 'image x.png is also in'),
             (write(tmp_path / 'bad.json', {'images': 3}), 'not a COCO file'),
             (write(tmp_path / 'test.json', dict(images=[], categories=CATS)),
              'images only, no annotations'),
             (tmp_path / 'none.json', 'cannot read a COCO JSON')]
    for other, says in cases:
        proc = call_tool('data_prep/merge_coco.py', out, a, other, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], proc.stderr
        assert str(other) in lines[0] and not out.exists()
    proc = call_tool('data_prep/merge_coco.py', out, f'{a}={tmp_path}/no_dir', check=False)
    assert proc.returncode == 2 and 'no such image folder' in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ['a.json', 'bad.json', 'c.json', 'test.json']

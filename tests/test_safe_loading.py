"""No code runs from a model or data file: pickles that call a function are refused.

Each payload's ``__reduce__`` asks the unpickler to call ``os.system('touch MARKER')``;
every entry point must exit 2 with one line naming the file and ``--trust-pickle``,
and the marker must never appear.
"""
import pickle
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, call_tool
from custom_modules.engine.checkpoint import UnsafeCheckpointError, load_checkpoint_file
from custom_modules.io.safe_pickle import UnsafePickleError, load_pickle
from custom_modules.tuning.tuner_io import load_cache
from weights_helpers import Payload

sys.path.insert(0, f'{REPO}/tools')
import export_rle  # noqa: E402
import predict  # noqa: E402

SMOKE = 'configs/dsb_mrcnn_smoke.py'


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'code_ran'
    yield path
    assert not path.exists() or path.stat().st_size == 0  # (only trusted loads make it)


def payload_checkpoint(path, marker) -> str:
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': {'x': Payload(marker)}}, path)
    return str(path)


def one_line_refusal(text, path) -> str:
    """The last stderr line names the file, the refused call and the way out."""
    line = text.strip().splitlines()[-1]
    assert str(path) in line and 'system' in line and '--trust-pickle' in line, text
    assert 'Traceback' not in text, text
    return line


def test_checkpoint_payload_is_refused_and_trust_allows_it(tmp_path, marker):
    path = payload_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_file(path)
    one_line_refusal(str(err.value), path)
    assert not marker.exists()
    load_checkpoint_file(path, trust=True)  # the old behaviour, asked for
    assert marker.exists()


def test_predict_refuses_a_payload_checkpoint(tmp_path, marker, capsys):
    import cv2
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8), np.uint8))
    ckpt = payload_checkpoint(tmp_path / 'evil.pth', marker)
    code = predict.main([str(tmp_path / 'a.png'), '--out', str(tmp_path / 'out'),
                         '--config', f'{REPO}/{SMOKE}', '--checkpoint', ckpt])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    one_line_refusal(err, ckpt)
    assert not marker.exists() and not (tmp_path / 'out').exists()


def test_test_and_train_refuse_a_payload_checkpoint(tmp_path, marker):
    (tmp_path / 'ann.json').write_text('{}')
    data = [f'{split}_dataloader.dataset.{key}={value}' for split in ('train', 'val', 'test')
            for key, value in (('ann_file', tmp_path / 'ann.json'),
                               ('data_prefix.img', f'{tmp_path}/'))]
    ckpt = payload_checkpoint(tmp_path / 'evil.pth', marker)
    proc = call_tool('tools/test.py', SMOKE, ckpt, '--work-dir', str(tmp_path / 'work'),
                     '--cfg-options', *data, check=False)
    assert proc.returncode == 2
    one_line_refusal(proc.stderr, ckpt)
    proc = call_tool('tools/train.py', SMOKE, '--work-dir', str(tmp_path / 'train'), '--resume',
                     ckpt, '--cfg-options', *data, check=False)
    assert proc.returncode == 2
    one_line_refusal(proc.stderr, ckpt)
    assert not marker.exists() and not (tmp_path / 'train').exists()


def test_export_rle_refuses_a_payload_pickle(tmp_path, marker, capsys):
    pkl = tmp_path / 'preds.pkl'
    pkl.write_bytes(pickle.dumps([{'img_path': 'a.png', 'ori_shape': (4, 4),
                                   'extra': Payload(marker)}]))
    code = export_rle.main([str(pkl), '--out', str(tmp_path / 'sub.csv')])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    one_line_refusal(err, pkl)
    assert not marker.exists() and not (tmp_path / 'sub.csv').exists()


def test_export_rle_reads_what_test_py_writes(tmp_path):
    """What tools/test.py --out pickles (MMDetection's DumpDetResults) is data: read as before."""
    from mmdet.evaluation import DumpDetResults
    from mmdet.structures import DetDataSample
    from custom_modules.structures.label_map import LabelMapPrediction, to_sample
    label_map = np.zeros((10, 12), np.int32)
    label_map[1:5, 1:5], label_map[6:10, 6:10] = 1, 2
    sample = DetDataSample(metainfo=dict(img_path='/d/img1.png', ori_shape=(10, 12), img_id=0))
    to_sample(sample, LabelMapPrediction(label_map, np.array([0.9, 0.8], np.float32),
                                         np.zeros(2, np.int64)))
    pkl = tmp_path / 'preds.pkl'
    dump = DumpDetResults(out_file_path=str(pkl))
    dump.process({}, [sample.to_dict()])
    dump.evaluate(1)
    loaded = load_pickle(str(pkl))
    assert torch.equal(loaded[0]['pred_instances']['scores'], torch.tensor([0.9, 0.8]))
    assert export_rle.main([str(pkl), '--out', str(tmp_path / 'sub.csv'), '--min-area', '0']) == 0
    assert (tmp_path / 'sub.csv').read_text().count('img1,') == 2


def test_raw_cache_payload_is_refused(tmp_path, marker):
    from custom_modules.models.instances import SoftInstances
    fields = {name: np.zeros(1) for name in SoftInstances._fields}
    cache = dict(version=1, source={}, images=[dict(raw=[SoftInstances(**fields)])])
    good = tmp_path / 'good.pkl'
    good.write_bytes(pickle.dumps(cache))
    assert isinstance(load_cache(str(good), {})['images'][0]['raw'][0], SoftInstances)
    evil = tmp_path / 'raw.pkl'
    evil.write_bytes(pickle.dumps(dict(cache, tta=Payload(marker))))
    with pytest.raises(UnsafePickleError) as err:
        load_cache(str(evil), {})
    one_line_refusal(str(err.value), evil)
    assert not marker.exists()

"""Turn a training checkpoint into a shipped model folder (MMDetection's publish_model).

    python tools/publish_model.py CKPT CONFIG OUT_DIR [--half] [--thresholds JSON] [--name NAME]

Writes, all or nothing, in OUT_DIR (``model_zoo/<name>/`` to ship it):

- ``weights.safetensors``: the state dict only (no optimizer, no message hub,
  nothing pickled); floats in half precision with --half (cast back on loading);
- ``config.py``: ``_base_ = [CONFIG]`` when CONFIG is a repo config (under
  configs/), else CONFIG whole (every base merged in);
- ``thresholds.json``: the settings of --thresholds (written by
  ``tools/tune_thresholds.py --out-thresholds``), else the config's own;
- ``MODEL_CARD.md`` (a template: training command, fields to fill) and
  ``metrics.json`` (a skeleton: null until measured).

The checkpoint must fit the config's model. Prints each file and the total size.
"""
import argparse
import json
import os
import sys

from safetensors.torch import save

from custom_modules.data.datasets import config_input_mode
from custom_modules.engine.checkpoint import (CheckpointError, check_checkpoint_fits,
                                              check_state_fits, unwrapped_state)
from custom_modules.inference import model_zoo
from custom_modules.inference.model_zoo import load_config
from custom_modules.io.atomic import check_can_write, write_all_or_nothing
from custom_modules.tuning.tuner_io import flatten, overrides

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO_ROOT, 'configs')


def inference_state(ckpt: dict, half: bool) -> dict:
    """The weights alone, contiguous; floating tensors in half precision when asked."""
    return {k: (v.half() if half and v.is_floating_point() else v).contiguous()
            for k, v in unwrapped_state(ckpt).items()}


def read_checkpoint(net, path: str) -> dict:
    """A ``.pth`` (a trusted pickle: your own training's) or a ``.safetensors`` that fits ``net``."""
    if not path.endswith('.safetensors'):
        return check_checkpoint_fits(net, path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        ckpt = dict(state_dict=load_file(path, device='cpu'))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f'{path}: not a loadable safetensors file ({err})') from None
    check_state_fits(net, ckpt, path)
    return ckpt


def is_repo_config(path: str) -> bool:
    """Whether ``path`` lies under the repo's ``configs/``."""
    path = os.path.realpath(path)
    return os.path.commonpath([path, CONFIGS]) == CONFIGS


def short_config(config: str, out_dir: str) -> str:
    """``config.py`` inheriting the repo config (relative when OUT_DIR is in the repo)."""
    config, out_dir = os.path.realpath(config), os.path.realpath(out_dir)
    inside = os.path.commonpath([out_dir, REPO_ROOT]) == REPO_ROOT
    base = os.path.relpath(config, out_dir) if inside else config
    return (f"# The recipe that trained these weights; thresholds.json (beside this file) sets\n"
            f"# the post-processing settings over it when the model is loaded.\n"
            f"_base_ = [{base!r}]\n")


def own_settings(net) -> dict:
    """The post-processing settings a built model uses, as dotted config keys."""
    from custom_modules.tuning.tuner import model_family, model_settings
    try:
        family = model_family(net)
    except ValueError:
        return {}
    return flatten(overrides(family, model_settings(net), None))


def model_card(name: str, args, cfg, meta: dict, settings: dict) -> str:
    """A MODEL_CARD.md to complete."""
    work_dir = os.path.dirname(args.checkpoint) or '.'
    config = os.path.relpath(args.config) if is_repo_config(args.config) else args.config
    rows = [
        ('model', f"{cfg.model.get('type')}, backbone {cfg.model.get('backbone', {}).get('type')}"
                  f'; config `{config}`'),
        ('input', f'`{config_input_mode(cfg)}` (`LoadNucleusImage` mode)'),
        ('training data', 'TODO: the images (how many, which set), their licence'),
        ('training command', f'`python tools/train.py {config} --work-dir {work_dir}` '
                             'TODO: check it, add the --cfg-options used'),
        ('training time', 'TODO: wall time, machine, date'),
        ('weights', f"`{args.checkpoint}` (iteration {meta.get('iter')}), "
                    f"{'half' if args.half else 'full'} precision: "
                    f"`python tools/publish_model.py {' '.join(args.argv)}`"),
        ('thresholds', f'`thresholds.json`: ' + ', '.join(f'{k.split(".")[-1]} {v}'
                                                          for k, v in settings.items())
         + '; TODO: tuned on what, checked on what'),
        ('held-out scores', 'TODO: fold-0 score of the recipe trained without fold 0, per '
                            'image kind, with date and command (also in `metrics.json`)'),
        ('bundled sample', 'TODO: `python tools/predict.py \'data/sample/stage1_train/*/images/'
                           f"*.png' --out DIR --model {name}` then `python tools/score_labels.py "
                           'DIR/labels data/sample/stage1_train`: the score goes in '
                           '`metrics.json` (sample.score; tests/test_shipped_model.py holds the '
                           'model to it)'),
        ('bad at', 'TODO: image kinds, nucleus sizes, what it misses or merges'),
        ('licence', 'TODO: of the weights and of the training data')]
    lines = [f'# {name}', '', '| | |', '| --- | --- |']
    lines += [f'| {k} | {v} |' for k, v in rows]
    return '\n'.join(lines) + '\n'


def metrics_skeleton() -> str:
    """``metrics.json`` with every figure null (not measured)."""
    entry = dict(score=None, per_kind={k: None for k in model_zoo.KINDS}, images=None,
                 thresholds=None, model=None, date=None, command=None)
    sample = dict(score=None, images=6, date=None, command=None)
    speed = dict(s_per_image=None, images=None, date=None, command=None)
    return json.dumps(dict(fold0=entry, sample=sample, speed=speed), indent=2) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py (.pth), or '
                        '.safetensors')
    parser.add_argument('config', help='the config that trained it')
    parser.add_argument('out_dir', help='the model folder to write (model_zoo/<name> to ship it)')
    parser.add_argument('--half', action='store_true',
                        help='store floats in half precision (check the score: README)')
    parser.add_argument('--thresholds', help='thresholds.json of tools/tune_thresholds.py '
                        "--out-thresholds (default: the config's own settings)")
    parser.add_argument('--name', help='the model name in its card (default: the folder name)')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    name = args.name or os.path.basename(os.path.normpath(args.out_dir))
    files = {n: os.path.join(args.out_dir, n) for n in (
        model_zoo.WEIGHTS, model_zoo.CONFIG, model_zoo.THRESHOLDS, model_zoo.CARD,
        model_zoo.METRICS)}
    try:
        check_can_write(list(files.values()))
        cfg = load_config(args.config)
        tuned_on = "the config's own settings"
        if args.thresholds:
            model_zoo.apply_thresholds(cfg, args.thresholds)  # checks the keys against CONFIG
            with open(args.thresholds) as f:
                tuned_on = json.load(f).get('tuned_on') or ''
        from mmdet.registry import MODELS
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        net = MODELS.build(cfg.model)  # per-class thresholds of the wrong length stop here
        ckpt = read_checkpoint(net, args.checkpoint)
    except (OSError, ValueError, KeyError) as err:  # CheckpointError, ModelZooError
        print(f'error: {err}', file=sys.stderr)
        return 2
    settings = (model_zoo.read_thresholds(args.thresholds) if args.thresholds
                else own_settings(net))
    meta = {k: str(v) for k, v in dict(
        name=name, source=os.path.basename(args.checkpoint), half=args.half,
        iter=(ckpt.get('meta', None) or {}).get('iter')).items()}
    weights = save(inference_state(ckpt, args.half), metadata=meta)
    config_text = (short_config(args.config, args.out_dir) if is_repo_config(args.config)
                   else cfg.pretty_text)
    write_all_or_nothing({
        files[model_zoo.WEIGHTS]: weights, files[model_zoo.CONFIG]: config_text,
        files[model_zoo.THRESHOLDS]: model_zoo.thresholds_json(settings, tuned_on),
        files[model_zoo.CARD]: model_card(name, args, cfg, meta, settings),
        files[model_zoo.METRICS]: metrics_skeleton()})
    for path in files.values():
        print(f'wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)')
    print(f'{args.out_dir}: {model_zoo.folder_size_mb(args.out_dir):.1f} MB in all; fill in '
          f'{model_zoo.CARD} and {model_zoo.METRICS}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

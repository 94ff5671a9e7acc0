"""Build the label-map predictor a config describes: model, + TTA, + tiles, + rescaling.

``tools/test.py`` and :class:`~custom_modules.inference.inferencer.NucleusInferencer`
both call :func:`predictor_cfg` and :func:`load_weights`, so a config predicts
the same way from the command line and from Python.
"""
from typing import Optional, Union

from mmengine.config import Config

from custom_modules.engine.checkpoint import check_checkpoint_fits, unwrapped_state
from custom_modules.inference.diameter import parse_diameter
from custom_modules.structures.predictor import innermost


def predictor_cfg(cfg: Config, tta: Union[bool, str] = False, tile: Optional[int] = None,
                  diameter: Union[str, float, None] = None) -> dict:
    """The model config to test with.

    Args:
        cfg: a full config (``model``, optional ``tta_model`` and ``tile``).
        tta: wrap the model in ``cfg.tta_model`` (its views); a name: with the
            config's view set ``tta_views_<name>`` instead (``'full'``: the
            3rd-place solution's 15 views, :func:`named_views`).
        tile: ``None``: the config's ``tile`` settings (large images tiled);
            ``0``: never tile; ``N``: tile every image larger than N x N.
        diameter: ``'auto'``: estimate each image's nucleus size and rescale it
            to the training size; pixels: the nuclei's size; ``None``: as it is
            (:mod:`custom_modules.inference.diameter`).

    Raises:
        KeyError: ``tta`` without a ``tta_model``, or a view set the config lacks.
        ValueError: tiles no larger than their overlap.
    """
    model = cfg.model
    if is_ensemble(cfg):  # each member uses its own config's TTA
        model = dict(model, tta=tta)
    elif tta:
        if 'tta_model' not in cfg:
            raise KeyError(f'{cfg.filename} defines no tta_model')
        model = dict(cfg.tta_model, module=model)
        if isinstance(tta, str):
            model['views'] = named_views(cfg, tta)
    tiling = dict(cfg.get('tile', None) or {})
    if tile is not None:
        tiling = dict(tiling, size=tile, tile_above=0) if tile > 0 else {}
    if tiling:
        if tiling['size'] <= tiling.get('overlap', 128):
            raise ValueError(f"tiles of {tiling['size']} px must be larger than their overlap "
                             f"({tiling.get('overlap', 128)} px: tile.overlap in the config)")
        model = dict(type='NucleusTiledModel', module=model, tile_size=tiling['size'],
                     overlap=tiling.get('overlap', 128), tile_above=tiling.get('tile_above', 0),
                     min_area=tiling.get('min_area', model_min_area(cfg)),
                     align=tiling.get('align', feature_stride(cfg)))
    diameter = parse_diameter(diameter)
    if diameter is not None:  # outermost: tiles and views see the rescaled image
        model = dict(type='NucleusRescaledModel', module=model, diameter=diameter,
                     **cfg.get('nucleus_size', {}))
    return model


def add_tta_arguments(parser, flag: bool = True) -> None:
    """The command-line options of :func:`predictor_cfg`'s ``tta``, both into ``args.tta``.

    ``--tta-views NAME``: the config's view set ``tta_views_NAME``; with ``flag``,
    ``--tta``: its ``tta_model`` views (``args.tta`` False, True or the name).
    Without ``flag`` (a benchmark of the views) TTA is always on: ``args.tta`` is
    True unless a name is given.
    """
    if flag:
        parser.add_argument('--tta', action='store_true', help="test-time augmentation (the "
                            "config's tta_model and its views: the Mask R-CNN's 5, the U-Net's 4)")
    parser.add_argument('--tta-views', dest='tta', metavar='NAME', help="TTA with the config's "
                        "view set tta_views_NAME ('full': the 3rd-place solution's 15 views)")
    parser.set_defaults(tta=not flag)


def named_views(cfg: Config, name: str) -> list:
    """The config's view set ``tta_views_<name>`` (``--tta-views NAME``).

    Raises:
        KeyError: no such set, in one line naming the sets the config has.
    """
    key = f'tta_views_{name}'
    if not isinstance(cfg.get(key, None), (list, tuple)):
        sets = sorted(k[len('tta_views_'):] for k in cfg if k.startswith('tta_views_'))
        raise KeyError(f"--tta-views {name}: {cfg.filename} has no view set {key} "
                       f"(it has: {', '.join(sets) or 'none'})")
    return list(cfg[key])


def model_min_area(cfg: Config) -> int:
    """The model's own smallest nucleus, applied again once tiles are joined."""
    post = cfg.model.get('postprocess', None) or {}
    return post.get('min_area', cfg.model.get('min_area', 0))  # an ensemble: its own


def feature_stride(cfg: Config) -> int:
    """The model's input size divisor (its deepest stride; 64 for an ensemble)."""
    return (cfg.model.get('data_preprocessor', None) or {}).get('pad_size_divisor', 64)


def is_ensemble(cfg: Config) -> bool:
    """Whether the config's model is an ensemble (its members carry their checkpoints)."""
    return cfg.model.get('type') == 'NucleusEnsemble'


def load_weights(model, checkpoint: str, trust: Optional[bool] = None) -> dict:
    """Load ``checkpoint`` into the network inside ``model``, refusing one that does not fit.

    A ``.safetensors`` file (a shipped model's weights) is read without unpickling.
    ``trust``: allow any pickled object in a ``.pth`` (``None``: the process's setting,
    see :func:`~custom_modules.engine.checkpoint.trust_pickled_code`).
    """
    net = innermost(model)
    if checkpoint.endswith('.safetensors'):
        from custom_modules.inference.model_zoo import load_safetensors
        return load_safetensors(net, checkpoint)
    ckpt = check_checkpoint_fits(net, checkpoint, trust=trust)
    net.load_state_dict(unwrapped_state(ckpt), strict=True)
    return ckpt

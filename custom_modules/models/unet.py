"""The contour-aware U-Net family as an MMDetection model.

An encoder (any MMDetection backbone: MobileNetV2, ResNet, or the plain
:class:`PlainUNetEncoder`) and a decoder with skip connections up to the input
resolution; one output map per head (``nucleus``, ``contour``, ``boundary``,
``marker``), from one shared decoder or from a decoder per head
(``separate_decoders``). CAUNet is ``heads=('nucleus', 'contour')``, CAMUNet
adds ``'marker'``. Targets come from :class:`~custom_modules.data.unet_targets.UNetTargets`
in the training pipeline; instances from
:func:`~custom_modules.models.unet_decode.decode_probabilities`. Like
:class:`~custom_modules.models.detector.NucleusMaskRCNN`, the model predicts label
maps, so the metric, TTA, tiling, ensembles and exporters take it unchanged.
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.model import BaseModule
from torch import nn

from custom_modules.data.unet_targets import TARGET_BITS, decode_targets
from custom_modules.models.instances import apply_postprocess, make_postprocess
from custom_modules.models.unet_decode import decode_probabilities, make_decode, probabilities_dict
from custom_modules.structures.label_map import LabelMapPrediction, to_sample
from custom_modules.structures.predictor import image_batch

HEADS = ('nucleus', 'contour', 'boundary', 'marker')
IGNORE = 255  # target code of padding (real codes use bits 0-4)


class UNetLoss(NamedTuple):
    """Loss settings (a misspelled key raises ``TypeError``).

    Attributes:
        bce: weight of the (pixel-weighted) binary cross-entropy.
        dice: weight of the soft Dice term (1 - Dice).
        focal: weight of the focal loss (0: off); ``gamma`` its exponent.
        gap_weight: extra weight of background pixels between touching nuclei.
        head_weights: one weight per head (``None``: all 1).
    """
    bce: float = 1.0
    dice: float = 1.0
    focal: float = 0.0
    gamma: float = 2.0
    gap_weight: float = 5.0
    head_weights: Optional[Tuple[float, ...]] = None


def head_loss(logit: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
              valid: torch.Tensor, cfg: UNetLoss) -> torch.Tensor:
    """BCE (weighted by ``weight``) + soft Dice (+ focal) of one head over ``valid`` pixels."""
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction='none')
    loss = cfg.bce * (bce * weight).sum() / weight.sum().clamp(min=1)
    prob = logit.sigmoid() * valid
    if cfg.dice:
        inter = (prob * target).sum()
        loss = loss + cfg.dice * (1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1))
    if cfg.focal:
        p_true = prob * target + (1 - prob) * (1 - target)
        loss = loss + cfg.focal * ((1 - p_true)**cfg.gamma * bce * weight).sum() / weight.sum().clamp(
            min=1)
    return loss


@MODELS.register_module()
class PlainUNetEncoder(BaseModule):
    """The original U-Net's encoder: two 3x3 convs per level, max-pool between.

    Args:
        in_channels: image channels.
        channels: output channels of each level (level ``i`` at stride ``2**i``).
        norm_cfg: normalisation of the convs.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (16, 32, 64, 128, 256),
                 norm_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='BN')
        self.levels = nn.ModuleList()
        for out in channels:
            self.levels.append(nn.Sequential(
                ConvModule(in_channels, out, 3, padding=1, norm_cfg=norm_cfg),
                ConvModule(out, out, 3, padding=1, norm_cfg=norm_cfg)))
            in_channels = out

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, level in enumerate(self.levels):
            x = level(F.max_pool2d(x, 2) if i else x)
            outs.append(x)
        return tuple(outs)


class UNetDecoder(nn.Module):
    """Upsample, concatenate the skip, two 3x3 convs; last stage at full size."""

    def __init__(self, encoder_channels: Sequence[int], channels: Sequence[int], stem_channels: int,
                 out_channels: int, norm_cfg: dict) -> None:
        super().__init__()
        if len(channels) != len(encoder_channels):
            raise ValueError(f'decoder_channels needs {len(encoder_channels)} values (one per '
                             f'encoder level below the deepest, plus the full-size stage), '
                             f'got {len(channels)}')
        skips = list(encoder_channels[-2::-1]) + [stem_channels]
        in_channels = encoder_channels[-1]
        self.stages = nn.ModuleList()
        for skip, out in zip(skips, channels):
            self.stages.append(nn.Sequential(
                ConvModule(in_channels + skip, out, 3, padding=1, norm_cfg=norm_cfg),
                ConvModule(out, out, 3, padding=1, norm_cfg=norm_cfg)))
            in_channels = out
        self.out = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, feats: Sequence[torch.Tensor], stem: torch.Tensor) -> torch.Tensor:
        x = feats[-1]
        for stage, skip in zip(self.stages, list(feats[-2::-1]) + [stem]):
            x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            x = stage(torch.cat([x, skip], 1))
        return self.out(x)


@MODELS.register_module()
class NucleusUNet(BaseDetector):
    """Contour-aware U-Net (CAUNet / CAMUNet) predicting label maps.

    Args:
        encoder: an MMDetection backbone config giving features at strides 2..32
            or 4..32 (shallowest first).
        encoder_channels: channels of those features.
        decoder_channels: one per encoder level below the deepest, deep to
            shallow, then the full-size stage.
        heads: output maps, a subset of ``nucleus, contour, boundary, marker``
            with ``nucleus`` first.
        separate_decoders: one decoder per head instead of one shared.
        stem_channels: channels of the full-size skip (a conv on the image).
        norm_cfg: normalisation of the decoder.
        loss: see :class:`UNetLoss`.
        decode: see :class:`~custom_modules.models.unet_decode.DecodeSettings`.
        postprocess: ``dict(min_area, dilation_radius)`` as for Mask R-CNN.
    """

    def __init__(self, encoder: dict, encoder_channels: Sequence[int],
                 decoder_channels: Sequence[int], heads: Sequence[str] = ('nucleus', 'contour'),
                 separate_decoders: bool = True, stem_channels: int = 16,
                 norm_cfg: Optional[dict] = None, loss: Optional[dict] = None,
                 decode: Optional[dict] = None, postprocess: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        heads = tuple(heads)
        if not heads or heads[0] != 'nucleus' or not set(heads) <= set(HEADS) or len(
                set(heads)) != len(heads):
            raise ValueError(f"heads must start with 'nucleus' and be distinct names of {HEADS}, "
                             f'got {heads}')
        self.heads = heads
        self.loss_cfg = UNetLoss(**(loss or {}))
        if self.loss_cfg.head_weights is not None and len(self.loss_cfg.head_weights) != len(heads):
            raise ValueError(f'loss.head_weights needs {len(heads)} values, one per head')
        self.decode_cfg = make_decode(decode)
        self.postprocess = make_postprocess(postprocess)
        norm_cfg = norm_cfg or dict(type='BN')
        self.encoder = MODELS.build(encoder)
        self.stem = ConvModule(3, stem_channels, 3, padding=1, norm_cfg=norm_cfg)
        n_dec, n_out = (len(heads), 1) if separate_decoders else (1, len(heads))
        self.decoders = nn.ModuleList(
            UNetDecoder(encoder_channels, decoder_channels, stem_channels, n_out, norm_cfg)
            for _ in range(n_dec))

    def extract_feat(self, batch_inputs: torch.Tensor):
        return self.encoder(batch_inputs)

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None) -> torch.Tensor:
        """Logits, ``B x heads x H x W`` at the input size."""
        feats = self.extract_feat(batch_inputs)
        stem = self.stem(batch_inputs)
        return torch.cat([decoder(feats, stem) for decoder in self.decoders], 1)

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList) -> Dict[str, torch.Tensor]:
        logits = self._forward(batch_inputs)
        codes = [s.gt_sem_seg.sem_seg[0] for s in batch_data_samples]
        if any(c.shape != logits.shape[-2:] for c in codes):
            raise ValueError('U-Net targets must be padded like the images: set '
                             f'data_preprocessor.pad_seg=True, seg_pad_value={IGNORE}')
        code = torch.stack(codes).to(logits.device).long()
        valid = (code != IGNORE).float()  # padding carries no target
        weight = valid * (1.0 + self.loss_cfg.gap_weight * ((code & TARGET_BITS['gap']) > 0).float())
        head_weights = self.loss_cfg.head_weights or (1.0, ) * len(self.heads)
        targets = decode_targets(code, self.heads)
        return {f'loss_{name}': hw * head_loss(logits[:, i], target.float() * valid, weight,
                                               valid, self.loss_cfg)
                for i, (name, target, hw) in enumerate(zip(self.heads, targets, head_weights))}

    def raw_settings(self) -> dict:
        """The decoding thresholds :meth:`predict_from_raw` applies by default (``edge_thr``
        only when seeds come from an edge head)."""
        out = dict(nucleus_thr=self.decode_cfg.nucleus_thr, marker_thr=self.decode_cfg.marker_thr)
        if 'marker' not in self.heads and {'contour', 'boundary'} & set(self.heads):
            out['edge_thr'] = self.decode_cfg.edge_thr
        return out

    def predict_from_raw(self, probs: np.ndarray, settings: Optional[dict] = None,
                         raw: bool = False) -> LabelMapPrediction:
        """Instances from ``heads x H x W`` probabilities decoded with ``settings`` (keys of
        :meth:`raw_settings`; ``None``: the config's); ``raw``: no min area, no dilation."""
        decode = self.decode_cfg if settings is None else self.decode_cfg._replace(
            **{k: settings[k] for k in ('nucleus_thr', 'marker_thr', 'edge_thr') if k in settings})
        pred = decode_probabilities(probabilities_dict(np.asarray(probs, np.float32), self.heads),
                                    decode, 0 if raw else self.postprocess.min_area)
        return pred if raw else apply_postprocess(pred, self.postprocess)

    def decode_probs(self, probs: np.ndarray, raw: bool = False) -> LabelMapPrediction:
        """Instances from probabilities with the config's settings (:meth:`predict_from_raw`)."""
        return self.predict_from_raw(probs, None, raw)

    def probabilities(self, batch_inputs: torch.Tensor, img_shape, out_shape) -> np.ndarray:
        """``heads x H x W`` probabilities of the first image, resized to ``out_shape``."""
        probs = self._forward(batch_inputs)[:1, :, :img_shape[0], :img_shape[1]].sigmoid()
        if tuple(img_shape[:2]) != tuple(out_shape):
            probs = F.interpolate(probs, size=tuple(out_shape), mode='bilinear',
                                  align_corners=False)
        return probs[0].detach().float().cpu().numpy()

    @torch.no_grad()
    def predict_probs(self, img: np.ndarray, out_shape=None) -> np.ndarray:
        """``heads x H x W`` probabilities of one ``H x W x 3`` pipeline image."""
        out_shape = img.shape[:2] if out_shape is None else tuple(out_shape)
        data = self.data_preprocessor(image_batch(img, out_shape), False)
        return self.probabilities(data['inputs'], img.shape[:2], out_shape)

    def capture_raw(self, img: np.ndarray, out_shape=None,
                    score_thr: Optional[float] = None) -> np.ndarray:
        """The raw prediction :meth:`predict_from_raw` takes: the probabilities
        (``score_thr``: unused, probabilities hold every nucleus)."""
        return self.predict_probs(img, out_shape)

    def predict_label_map(self, img: np.ndarray, out_shape=None, raw: bool = False) -> LabelMapPrediction:
        """Instances of one image (see ``NucleusMaskRCNN.predict_label_map``)."""
        return self.predict_from_raw(self.capture_raw(img, out_shape), None, raw)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        for i, sample in enumerate(batch_data_samples):
            out_shape = sample.ori_shape if rescale else sample.img_shape
            probs = self.probabilities(batch_inputs[i:i + 1], sample.img_shape, out_shape[:2])
            to_sample(sample, self.decode_probs(probs))
        return batch_data_samples

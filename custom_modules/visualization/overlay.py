"""Outlines of label maps drawn over images, for overlays and error analysis."""
from typing import Optional

import cv2
import numpy as np

from custom_modules.evaluation.metric import score_label_maps

GT_COLOUR = (0, 255, 0)      # BGR green
PRED_COLOUR = (255, 0, 255)  # BGR magenta


def outline(label_map: np.ndarray) -> np.ndarray:
    """Pixels of an instance whose 4-neighbour belongs to another label."""
    edge = np.zeros(label_map.shape, bool)
    edge[:-1] |= label_map[:-1] != label_map[1:]
    edge[1:] |= label_map[1:] != label_map[:-1]
    edge[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edge[:, 1:] |= label_map[:, 1:] != label_map[:, :-1]
    return edge & (label_map > 0)


def draw_overlay(img: np.ndarray, pred_map: np.ndarray, gt_map: Optional[np.ndarray]) -> np.ndarray:
    """Draw outlines and a caption (score when the ground truth is known)."""
    canvas = img.copy()
    caption = f'pred {int(pred_map.max())}'
    if gt_map is not None:
        canvas[outline(gt_map)] = GT_COLOUR
        score = float(score_label_maps(gt_map, pred_map).mean())
        caption = f'score {score:.3f}  gt {int(gt_map.max())}  ' + caption
    canvas[outline(pred_map)] = PRED_COLOUR
    cv2.putText(canvas, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
    cv2.putText(canvas, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return canvas

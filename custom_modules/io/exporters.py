"""What a prediction is saved as: label images, overlays, CSVs, ROIs, GeoJSON.

Every function here returns the file's content (bytes or text); the caller
writes it with :mod:`custom_modules.io.atomic`, so an interrupted run never
leaves a half-written file. Outlines are traced through the middle of the
boundary pixels' edges, in pixel-corner coordinates (pixel ``(x, y)`` covers
``[x, x + 1) x [y, y + 1)``, as in ImageJ and QuPath).
"""
import csv
import io
import json
import zipfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy import ndimage
from skimage.measure import approximate_polygon, find_contours

from custom_modules.data.image_io import ImageReadError, read_image_file
from custom_modules.data.intensity import to_model_input
from custom_modules.evaluation.measure import MEASUREMENT_COLUMNS, class_name
from custom_modules.io.csv_cells import csv_text, safe_cell
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.rle import coco_encode_label_map
from custom_modules.visualization.overlay import outline

SUBMISSION_HEADER = 'ImageId,EncodedPixels'
MEASUREMENT_HEADER = ('image', ) + MEASUREMENT_COLUMNS


def label_image(label_map: np.ndarray) -> Tuple[str, bytes]:
    """Encode a label map: ``('.png', 16-bit PNG)``, or ``('.tif', 32-bit TIFF)`` above 65535."""
    if int(label_map.max(initial=0)) <= np.iinfo(np.uint16).max:
        ok, data = cv2.imencode('.png', label_map.astype(np.uint16))
        if not ok:
            raise ValueError(f'cannot encode a {label_map.shape} label map as PNG')
        return '.png', data.tobytes()
    import tifffile
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, label_map.astype(np.uint32), compression='zlib')
    return '.tif', buffer.getvalue()


def read_label_image(path: str) -> np.ndarray:
    """Read a label image written from :func:`label_image` back as int32."""
    if path.lower().endswith(('.tif', '.tiff')):
        import tifffile
        try:
            return tifffile.imread(path).astype(np.int32)
        except Exception as err:  # tifffile raises several types on broken files
            raise ImageReadError(f'{path}: not a readable TIFF ({err})') from None
    return read_image_file(path).astype(np.int32)


def read_saved_prediction(label_path: str, csv_path: str,
                          class_names: Sequence[str]) -> LabelMapPrediction:
    """A prediction as saved: a label image and its measurements CSV (scores, classes)."""
    label_map = read_label_image(label_path)
    num = int(label_map.max(initial=0))
    scores, classes = np.zeros(num), np.zeros(num, np.int64)
    written = {safe_cell(name): index for index, name in enumerate(class_names)}
    with open(csv_path, newline='') as f:
        for row in csv.DictReader(f):
            index = int(row['label']) - 1
            scores[index] = float(row['score'])
            name = row['class']
            classes[index] = written[name] if name in written else int(name)
    return LabelMapPrediction(label_map, scores, classes)


def colour_table(num: int) -> np.ndarray:
    """``num + 1`` distinct bright BGR colours (row 0, the background, is black)."""
    if num == 0:
        return np.zeros((1, 3), np.uint8)
    hues = (np.arange(num) * 0.618034 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(num, 220, np.uint8), np.full(num, 255, np.uint8)], -1)
    bgr = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]
    return np.concatenate([np.zeros((1, 3), np.uint8), bgr])


def overlay_png(image: np.ndarray, pred: LabelMapPrediction) -> bytes:
    """The image (8-bit, as it looks) with each nucleus outlined.

    One colour per nucleus; one per class when the image has several classes.
    """
    canvas = to_model_input(image, 'rgb')
    if np.shares_memory(canvas, image):  # an 8-bit BGR image comes back as it is
        canvas = canvas.copy()
    label_map = np.asarray(pred.label_map)
    classes = np.asarray(pred.classes, np.int64)
    if len(np.unique(classes)) > 1:
        lut = colour_table(int(classes.max()) + 1)[np.concatenate([[0], classes + 1])]
    else:
        lut = colour_table(len(pred))
    edge = outline(label_map)
    canvas[edge] = lut[label_map[edge]]
    return cv2.imencode('.png', canvas)[1].tobytes()


def nucleus_outlines(label_map: np.ndarray) -> Dict[int, np.ndarray]:
    """Closed outline (``N x 2`` float ``x, y``, first point repeated) of every label.

    A label in several pieces keeps its longest outline; holes are ignored.
    """
    outlines = {}
    for index, box in enumerate(ndimage.find_objects(label_map)):
        if box is None:
            continue
        mask = np.pad(label_map[box] == index + 1, 1).astype(np.uint8)
        contour = max(find_contours(mask, 0.5), key=len)
        contour = approximate_polygon(contour, tolerance=0)
        # padded (row, col) -> image (x, y) in pixel-corner coordinates
        xy = contour[:, ::-1] + (box[1].start - 0.5, box[0].start - 0.5)
        if not np.array_equal(xy[0], xy[-1]):
            xy = np.vstack([xy, xy[:1]])
        outlines[index + 1] = xy
    return outlines


def roi_zip(outlines: Dict[int, np.ndarray]) -> bytes:
    """ImageJ ROI set (a zip, one polygon per nucleus, named by its label)."""
    from roifile import ImagejRoi
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as zf:
        for label, xy in outlines.items():
            roi = ImagejRoi.frompoints(xy[:-1], name=str(label))
            zf.writestr(f'{label}.roi', roi.tobytes())
    return buffer.getvalue()


def geojson_text(outlines: Dict[int, np.ndarray], pred: LabelMapPrediction,
                 class_names: Sequence[str], object_type: str = 'detection') -> str:
    """A GeoJSON FeatureCollection of the nuclei, as QuPath imports it.

    Args:
        outlines: from :func:`nucleus_outlines`.
        pred: the prediction (scores and classes per label).
        class_names: names of the class indices.
        object_type: QuPath's ``objectType``: ``'detection'`` or ``'annotation'``.
    """
    features = []
    for label, xy in outlines.items():
        name = class_name(int(pred.classes[label - 1]), class_names)
        features.append({
            'type': 'Feature',
            'geometry': {'type': 'Polygon', 'coordinates': [np.round(xy, 3).tolist()]},
            'properties': {'objectType': object_type, 'classification': {'name': name},
                           'name': str(label), 'label': label, 'class': name,
                           'score': float(pred.scores[label - 1])}})
    return json.dumps({'type': 'FeatureCollection', 'features': features})


def measurements_csv(image_name: str, rows: Iterable[Dict]) -> str:
    """CSV text (with header) of one image's measurements, an ``image`` column first.

    Text cells (the image name, class names) are escaped by :func:`safe_cell`.
    """
    return csv_text(MEASUREMENT_HEADER, ([image_name] + [row[column] for column in
                                                         MEASUREMENT_COLUMNS] for row in rows))


def join_csv_texts(texts: Iterable[str]) -> str:
    """Concatenate CSV texts that share a header, keeping the first header only."""
    header, body = None, []
    for text in texts:
        first, _, rest = text.partition('\n')
        if header is None:
            header = first
        elif first != header:
            raise ValueError(f'CSV header {first!r} differs from {header!r}')
        body.append(rest)
    return (header or ','.join(MEASUREMENT_HEADER)) + '\n' + ''.join(body)


def submission_text(rows: Iterable[Tuple[str, str]]) -> str:
    """``ImageId,EncodedPixels`` CSV text of ``(ImageId, EncodedPixels)`` rows.

    ImageIds are escaped like every CSV cell the tools write (:func:`safe_cell`).
    That keeps every real Kaggle ImageId exact: DSB2018's are 64 hex digits
    and never start with a formula character (``= + - @``, tab, CR), so for
    them the escaping changes nothing. A name that does start with one cannot
    be a Kaggle ImageId anyway (the file is the user's own); there the file is
    made safe to open in a spreadsheet rather than kept byte-exact.
    """
    return csv_text(SUBMISSION_HEADER.split(','), rows)


def category_id_of(index: int, category_ids: Optional[Sequence[int]] = None) -> int:
    """The COCO ``category_id`` of class ``index`` (0-based, MMDetection's label).

    Args:
        index: the predicted class.
        category_ids: the dataset's ids in class order (``NucleusDataset``'s
            ``metainfo['category_ids']``, the JSON's categories in file order);
            ``None``: ``index + 1``, which is the same for data_prep's JSONs
            (ids 1..K in order).

    Raises:
        ValueError: a class past the given ids.
    """
    if category_ids is None:
        return int(index) + 1
    if not 0 <= index < len(category_ids):
        raise ValueError(f'predicted class {index} has no category id (the data has '
                         f'{len(category_ids)} categories: {list(category_ids)})')
    return int(category_ids[index])


def coco_results(image_id: int, image_name: str, pred: LabelMapPrediction,
                 category_ids: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO results (compressed RLE) of one image, a ``category_id`` per nucleus.

    ``category_id`` is the predicted class mapped by :func:`category_id_of`:
    ``category_ids[class]`` when given, else the class index + 1.
    """
    return [dict(image_id=image_id, image_name=image_name,
                 category_id=category_id_of(int(pred.classes[label - 1]), category_ids),
                 segmentation=rle, score=float(pred.scores[label - 1]))
            for label, rle in sorted(coco_encode_label_map(pred.label_map).items())]

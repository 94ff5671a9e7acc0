"""The label map every model predicts, label-map ops, RLE, tile grids, predictor helpers."""

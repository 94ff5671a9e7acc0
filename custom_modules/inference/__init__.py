"""Predictors built from configs: consensus, TTA, tiling, ensembles, rescaling,
the model zoo, the inferencer."""

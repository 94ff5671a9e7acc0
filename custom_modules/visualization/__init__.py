"""Outlines and overlays of predicted and true nuclei."""

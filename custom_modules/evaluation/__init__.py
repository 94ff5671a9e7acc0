"""Scoring label maps (the DSB metric) and measuring nuclei."""

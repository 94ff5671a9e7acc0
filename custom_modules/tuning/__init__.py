"""Post-processing thresholds tuned on cached raw predictions."""

"""Training and test plumbing: hooks, checkpoints, config checks, distributed start,
run settings, command-line checks."""

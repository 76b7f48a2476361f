"""Running a trained generator: load it (checkpoints.py) and colorize photos (colorize.py).
Imports the paper, the variants and the run files, never the engine or the lab."""

"""Running a trained generator: load it (checkpoints.py), colorize photos (colorize.py), files and
folders (batch.py), with the vividness dial (vividness.py). Imports neither the engine nor the lab."""

"""The engine around the paper's training iteration: trainer.py reads top to bottom; the rest are
its parts (checkpoints and run files, the rule for continuing a run, stop signals, torch settings)."""

"""The loop around the paper's training iteration: trainer.py reads top to bottom; the rest are its parts."""

"""The engine around the paper's training iteration: trainer.py reads top to bottom; the rest are
its parts (resume, checkpoints, interrupts, precision, CUDA graphs, torchrun, torch settings)."""

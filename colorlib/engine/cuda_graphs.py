"""One whole training iteration (three optimizer steps) captured as a CUDA graph and replayed, so
that a 100-epoch run is bounded by the GPU, not by Python. The iteration itself is unchanged:
the graph records exactly what `Trainer.step` does on a batch picked by index."""
from __future__ import annotations

import sys

import torch


class GraphedIteration:
    """Calls `step(*batch(index))`: eagerly on a side stream for the first three calls (as CUDA
    graphs require), then captures it once and replays the graph with the new index copied in.
    If capture fails (an op that cannot be captured), it says so once and stays eager."""

    def __init__(self, step, batch, optimizers):
        self.step, self.batch, self.optimizers = step, batch, optimizers
        self.graph = None
        self.calls = 0
        self.eager = False  # capture failed: every call runs eagerly

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.eager:
            return self.step(*self.batch(index))
        if self.graph is None and self.calls > 3:
            self._capture(index)
        if self.graph is None:  # warm-up iterations on a side stream
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                out = self.step(*self.batch(index))
            torch.cuda.current_stream().wait_stream(stream)
            return out
        self.static_index.copy_(index)
        self.graph.replay()
        return self.static_out.clone()

    def _capture(self, index: torch.Tensor) -> None:
        self.static_index = index.clone()
        for opt in self.optimizers:  # gradients are then allocated in the graph's pool
            opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: CUDA calls from other threads (e.g. a DataLoader's pin-memory
            # thread) must not invalidate this capture
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.static_out = self.step(*self.batch(self.static_index))
        except Exception as exc:  # any op that cannot be captured: stay correct, run eagerly
            print(f"colorlib: CUDA graph capture failed ({type(exc).__name__}: {exc}); training eagerly",
                  file=sys.stderr)
            self.eager = True
            torch.cuda.synchronize()
            return
        self.graph = graph

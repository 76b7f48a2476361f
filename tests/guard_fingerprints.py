"""The numbers of the paper's recipe and four variants, pinned: the smoke preset trained in float32
on one thread gives these history.csv and generator weights, bit for bit.

    python tests/guard_fingerprints.py --data DATA          prints today's fingerprints
    python tests/guard_fingerprints.py --data DATA --write  stores them (only for an intended change,
                                                            said so in the commit message)

tests/test_guard.py checks them. Bits are only comparable on the same kernels, so the stored file
says which torch and CPU capability produced it; elsewhere the test compares the losses within a
rounding tolerance instead.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
STORED = HERE / "fingerprints.json"
GUARDED = ("paper", "ycbcr-r1", "classes", "unet-l1", "paper-fan")


def environment() -> dict:
    return {"torch": torch.__version__.split("+")[0], "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def weights_hash(state: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fingerprint(method: str, data: str, out: Path) -> dict:
    """Train `method` at the smoke preset in float32, one thread, into `out`; its fingerprint."""
    from colorlib.engine.trainer import train
    from colorlib.lab.baselines import METHODS
    from colorlib.runs.config import make_config
    cfg = make_config("smoke", data=data, device="cpu", threads=1, amp=False, **METHODS[method])
    train(cfg, out, progress=False)
    history = (out / "history.csv").read_bytes()
    losses = [[float(v) for v in line.split(",")[2:]] for line in history.decode().splitlines()[1:]]
    generator = torch.load(out / "checkpoints" / "generator.pt", weights_only=False)["generator"]
    return {"history_sha256": hashlib.sha256(history).hexdigest(), "weights_sha256": weights_hash(generator),
            "losses": losses}


def all_fingerprints(data: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return {m: fingerprint(m, data, Path(tmp) / m) for m in GUARDED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 folder (train/<class>/*.jpg, test/<class>/*.jpg)")
    parser.add_argument("--write", action="store_true", help=f"store them in {STORED.name}")
    args = parser.parse_args()
    found = {**environment(), "methods": all_fingerprints(args.data)}
    text = json.dumps(found, indent=1)
    if args.write:
        STORED.write_text(text + "\n")
    print(text if not args.write else f"wrote {STORED}", file=sys.stdout)


if __name__ == "__main__":
    main()

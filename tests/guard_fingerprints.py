"""The numbers of the paper's recipe and four variants: the smoke preset trained in float32 on one
thread, its losses, history.csv and generator weights.

    python tests/guard_fingerprints.py --data DATA               prints today's fingerprints
    python tests/guard_fingerprints.py --data DATA --compare F   compares them, bit for bit, with a file F
                                                                 printed on this machine (at another commit)
    python tests/guard_fingerprints.py --data DATA --write       stores them (an intended change only)

tests/test_guard.py compares the stored losses within a rounding tolerance, on any CPU: bits are only
comparable where the same machine made both, which is what --compare is for.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
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


def dumps(found: dict) -> str:
    """JSON with each row of losses on one line."""
    return re.sub(r"\[\s+([^\[\]]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  json.dumps(found, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 folder (train/<class>/*.jpg, test/<class>/*.jpg)")
    parser.add_argument("--write", action="store_true", help=f"store them in {STORED.name}")
    parser.add_argument("--compare", type=Path, help="a file this script printed on this machine")
    args = parser.parse_args()
    found = {**environment(), "methods": all_fingerprints(args.data)}
    if args.compare:
        then = json.loads(args.compare.read_text())["methods"]
        changed = [f"{m}: {k}" for m in found["methods"] for k in ("history_sha256", "weights_sha256")
                   if then.get(m, {}).get(k) != found["methods"][m][k]]
        print("\n".join(changed) or "the same bits")
        sys.exit(1 if changed else 0)
    text = dumps(found)
    if args.write:
        STORED.write_text(text + "\n")
    print(text if not args.write else f"wrote {STORED}", file=sys.stdout)


if __name__ == "__main__":
    main()

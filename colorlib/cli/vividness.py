"""Command vividness-calibrate (lab/vividness.py): the colorize dial --vividness."""
from __future__ import annotations

from ._args import DATA_HELP, positive_int


def cmd_calibrate(args) -> int:
    from ..lab.vividness import calibrate_file
    calibrate_file(args.checkpoint, args.out, args.data, args.limit, args.device, val_size=args.val_size)
    return 0


def register(sub) -> None:
    p = sub.add_parser("vividness-calibrate", help="calibrate a generator's --vividness dial on its validation split",
                       description="Calibrate the dial on validation images carved from the training split (V = 0: "
                                   "best PSNR, V = 1: the truth's colourfulness) and store it in the generator file, "
                                   "written atomically; everything else in it is kept, and checked.")
    p.add_argument("checkpoint", metavar="GENERATOR", help="a generator.pt, or a run directory (its generator.pt)")
    p.add_argument("--out", help="write a new file instead (default: calibrate GENERATOR in place)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--limit", type=positive_int, default=1000, help="validation images (default 1000)")
    p.add_argument("--val-size", type=positive_int, metavar="N",
                   help="for a generator trained on every training image: the hold-out to calibrate on "
                        "(default 5000; a run's own hold-out is always used where it has one)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.set_defaults(func=cmd_calibrate)

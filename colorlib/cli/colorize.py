"""Command colorize (inference/batch.py)."""
from __future__ import annotations


def cmd_colorize(args) -> int:
    from ..inference.batch import colorize_files
    summary = colorize_files(args.inputs, args.output, args.checkpoint, args.render_size, args.device,
                             args.overwrite, args.max_pixels, progress=not args.no_progress, vividness=args.vividness)
    print(summary)
    return 1 if summary.failed else 0


def register(sub) -> None:
    p = sub.add_parser("colorize", help="colorize your own photos (files or folders) at full resolution",
                       description="Colorize photos of any size, keeping their own luminance. Outputs never "
                                   "overwrite inputs and are written atomically. Exit status: 0 all colorized, "
                                   "1 some failed, 2 nothing done, 130 interrupted (a rerun skips those done).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, or folders searched recursively")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the colorized photos (created if needed; JPEG in, JPEG out; else PNG)")
    p.add_argument("--checkpoint", help="generator.pt or run directory (default: the generator shipped with colorlib)")
    p.add_argument("--render-size", type=int, default=64,
                   help="short side of what the generator sees (default 64, best on sample photos; a multiple of "
                        "2**(g_depth+1), at most 2048); never above the photo's own")
    p.add_argument("--vividness", metavar="V",
                   help="how colourful, from 0 (the safest colours: the best validation PSNR) to 1 (as colourful "
                        "as real photos); default: the one stored with the generator (docs/photos.md)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps for the generator")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse images of more than N pixels, a guard against decompression bombs "
                        "(default Pillow's 89,478,485; 0 = no limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_colorize)

"""Commands evaluate (evaluation.py), train-classifier (classifier.py) and ship (ship.py)."""
from __future__ import annotations

import argparse

from ._args import positive_int


def cmd_evaluate(args) -> int:
    from ..lab.evaluation import evaluate_run, markdown_table
    report = evaluate_run(args.run_dir, args.classifier, args.data, args.limit, args.device, args.batch_size,
                          args.inception_weights, progress=not args.no_progress, generator=args.generator,
                          name=args.name, out=args.out)
    print(markdown_table([report]) + f"\nwrote {report['written']}")
    return 0


def cmd_train_classifier(args) -> int:
    from ..lab.classifier import train_classifier
    train_classifier(args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     widths=args.widths, train_size=args.train_size, test_size=args.test_size,
                     device=args.device, seed=args.seed)
    return 0


def cmd_ship(args) -> int:
    from ..lab.ship import ship
    ship(args.candidate, args.data, args.out, args.against, args.dry_run, args.device, args.val_limit, args.test_limit)
    return 0


def widths(text: str) -> tuple[int, ...]:
    values = text.split(",")
    if len(values) != 3 or not all(v.strip().isdigit() and int(v) > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--widths needs three positive integers, comma-separated, got {text!r}")
    return tuple(map(int, values))


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a run's generator on the test split (writes RUN/metrics.json)",
                       description="Score a run's generator on the test split, raw and through colorize. An "
                                   "evaluation of another scope (--limit, other --data) is written beside "
                                   "RUN/metrics.json (metrics-limit5.json, metrics-data-NAME.json), never over it.")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--classifier", help="classifier for semantic accuracy and feature FD (default: the shipped one)")
    p.add_argument("--data", help="data folder (default: the run's, else $COLORLIB_DATA); its classes "
                                  "are matched to the classifier's by name")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="score a seeded random subset of N test images (default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int, default=500, metavar="N")
    p.add_argument("--inception-weights", help="local torch-fidelity Inception weights: adds the standard FID")
    p.add_argument("--generator", metavar="FILE",
                   help="score this generator file instead of the run's checkpoint (a run shipped without one)")
    p.add_argument("--name", help="the rows' name in metrics.json and tables (default: the run directory's)")
    p.add_argument("--out", metavar="DIR", help="folder for the scores, e.g. of a read-only run (default: the run's)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train-classifier", help="train the fixed CIFAR-10 classifier behind semantic accuracy")
    p.add_argument("--data", help="data folder (default: $COLORLIB_DATA, else download CIFAR-10)")
    p.add_argument("--out", required=True, help="checkpoint file to write, e.g. classifier.pt (never replaced)")
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--batch-size", type=positive_int, default=512)
    p.add_argument("--lr", type=float, default=0.4, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--widths", type=widths, default=(64, 256, 256), help="channels of the 3 blocks (64,256,256)")
    p.add_argument("--train-size", type=positive_int, help="random subset of the training split (for quick tests)")
    p.add_argument("--test-size", type=positive_int, help="random subset of the test split (for quick tests)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("ship", help="make a generator colorize's default, only if it beats the current one",
                       description="Score a candidate and the default generator on the validation split and the "
                                   "sample photos; write the candidate only when it is no worse on any measure and "
                                   "better on one, keeping the file it replaces as generator.previous[-N].pt.")
    p.add_argument("candidate", help="a run directory (its best.pt, else generator.pt) or a checkpoint file")
    p.add_argument("--data", help="data folder with the training images (default: the candidate's data, "
                                  "else $COLORLIB_DATA, else download CIFAR-10)")
    p.add_argument("--against", metavar="FILE", help="the generator to beat (default: colorize's default)")
    p.add_argument("--out", metavar="FILE", help="where a winner is written (default: colorize's default file)")
    p.add_argument("--dry-run", action="store_true", help="compare and decide; write nothing")
    p.add_argument("--val-limit", type=positive_int, metavar="N", help="a seeded subset of the validation split")
    p.add_argument("--test-limit", type=positive_int, metavar="N", help="a seeded subset of the test split")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_ship)

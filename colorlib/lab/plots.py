"""The paper's figures, drawn from a run directory alone (no model, no retraining): Fig. 3 the losses,
Figs. 4-7 the samples after one epoch, Fig. 8 after several; and a study's frontier figure. Figures are
built without pyplot's global state, so batch jobs can save hundreds without leaking memory.
"""
from __future__ import annotations

import io
import itertools
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..runs import rundir


def smooth(values: torch.Tensor, window: int) -> torch.Tensor:
    """Trailing moving average; the first points average over what exists so far."""
    v = values.double()
    if window <= 1:
        return v
    c = torch.cat([torch.zeros(1, dtype=v.dtype), v.cumsum(0)])
    idx = torch.arange(1, v.numel() + 1)
    lo = (idx - window).clamp(min=0)
    return (c[idx] - c[lo]) / (idx - lo)


def save_png(fig: Figure, path, dpi: int) -> None:
    """A figure as a PNG, written whole or not at all."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    rundir.atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------- the collapse statistic
def d_wins_by_epoch(run_dir) -> dict[int, float]:
    """{epoch: share of its iterations in which D's loss (eq. 3) was below 0.01}, from epochs.csv, else (the
    shipped paper run, made before epochs.csv existed) history.csv; {} for a run that trains no discriminator."""
    cfg = rundir.read_config(run_dir)
    if cfg.adv_weight <= 0 or cfg.d_steps == 0:
        return {}
    epochs = rundir.read_epochs(run_dir)
    if len(epochs.get("d_wins_share", ())):
        return {int(e): float(s) for e, s in zip(epochs["epoch"].tolist(), epochs["d_wins_share"].tolist())}
    from .stable_colours import collapse_per_epoch  # it imports the engine (D_WINS_LOSS): only for old runs
    h = rundir.read_history(run_dir)
    done = rundir.read_run_info(run_dir).get("epochs_done") if (Path(run_dir) / "run.json").exists() else None
    shares = zip(h["epoch"].unique().tolist(), collapse_per_epoch(h).tolist())
    return {int(e): s for e, s in shares if done is None or e <= done}


def outright_epochs(shares: dict[int, float]) -> list[int]:
    """The epochs in which D won outright in every iteration."""
    return [e for e, share in sorted(shares.items()) if share >= 1.0 - 1e-9]


def epoch_spans(epochs: Sequence[int]) -> list[tuple[int, int]]:
    """[6, 7, 8, 12] -> [(6, 8), (12, 12)]: consecutive epochs share their epoch - position."""
    runs = (list(run) for _, run in itertools.groupby(enumerate(sorted(epochs)), lambda pair: pair[1] - pair[0]))
    return [(run[0][1], run[-1][1]) for run in runs]


def epoch_list(epochs: Sequence[int]) -> str:
    """[6, 7, 8, 12, 20, 21] -> "6-8, 12 and 20-21"."""
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in epoch_spans(epochs)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def epoch_note(shares: dict[int, float], epoch: int) -> str:
    """What the collapse statistic says of one epoch, for a figure's title ("" without it)."""
    return f"D wins outright in {shares[epoch]:.0%} of this epoch's iterations" if epoch in shares else ""


def run_story(run_dir, name) -> str:
    """The run a results notebook shows, in a few Markdown sentences from its files: what it is, the
    epochs in which D won outright, and its best validation epoch."""
    cfg, info = rundir.read_config(run_dir), rundir.read_run_info(run_dir)
    lines = [f"**The run shown here**: `{name}`, preset `{cfg.preset}`, {info.get('epochs_done')} of "
             f"{cfg.epochs} epochs ({info.get('status')}), {info.get('iterations_done') or 0:,} iterations, "
             f"{info.get('wall_time_s') or 0:.0f} s on {info.get('device_name') or info.get('device', '?')}."]
    shares = d_wins_by_epoch(run_dir)
    outright = outright_epochs(shares)
    if not shares:
        lines.append("It trains no discriminator, so D never wins.")
    elif outright:
        lines.append(f"In this run D won outright (D loss < 0.01 in every iteration) in "
                     f"epoch{'s' * (len(outright) > 1)} {epoch_list(outright)}: {len(outright)} of its "
                     f"{len(shares)} epochs, shaded red on the loss curves.")
    elif max(shares.values()) == 0:
        lines.append("D never won outright (D loss < 0.01) in any iteration of this run.")
    else:
        worst = max(shares, key=shares.get)
        lines.append(f"D never won outright in every iteration of an epoch; its highest share of such iterations "
                     f"was {shares[worst]:.0%}, in epoch {worst}.")
    epochs = rundir.read_epochs(run_dir)
    fd = epochs.get("val_fd")
    if fd is None or not len(fd) or bool(torch.isnan(fd).all()):
        lines.append("It has no per-epoch validation scores (no `epochs.csv` with `val_fd`: the run was made "
                     "without them), so no epoch is singled out as the best.")
    else:
        best = int(torch.nan_to_num(fd, nan=float("inf")).argmin())
        psnr = epochs.get("val_psnr_db")
        psnr_text = f", validation PSNR {float(psnr[best]):.2f} dB" if psnr is not None else ""
        lines.append(f"Epoch {int(epochs['epoch'][best])} has the best validation FD ({float(fd[best]):.2f}"
                     f"{psnr_text}); the last epoch's is {float(fd[-1]):.2f}.")
    return " ".join(lines)


# ---------------------------------------------------------------- Fig. 3
def loss_curves(run_dir) -> Figure:
    """Fig. 3: G and D losses per iteration (faint) with their moving average (bold), the loss terms,
    the epochs in which D won outright shaded red, and (with a discriminator) that share per epoch."""
    h, cfg, shares = rundir.read_history(run_dir), rundir.read_config(run_dir), d_wins_by_epoch(run_dir)
    it, n = h["iteration"].numpy(), len(h["iteration"])
    window = max(1, n // 50)
    fig = Figure(figsize=(16 if shares else 11, 4.4), layout="constrained")
    axes = fig.subplots(1, 3 if shares else 2)
    ax_gd, ax_parts = axes[:2]
    for values, label, color in ((h["g_total"], "generator (eq. 5)", "tab:blue"),
                                 (h["d_real"] + h["d_fake"], "discriminator (real + fake)", "tab:red")):
        ax_gd.plot(it, values.numpy(), color=color, alpha=0.25, lw=0.6)
        ax_gd.plot(it, smooth(values, window).numpy(), color=color, lw=1.8, label=label)
    ax_gd.set(xlabel="iteration", ylabel="loss", yscale="log", title="Generator and discriminator loss (Fig. 3)")
    for values, label, color in ((h["g_adv"], "G adversarial", "tab:blue"),
                                 (cfg.lam * h["g_content"], f"lambda x G {cfg.content_loss}", "tab:green"),
                                 (h["d_real"], "D on real", "tab:orange"), (h["d_fake"], "D on generated", "tab:red")):
        ax_parts.plot(it, smooth(values, window).numpy(), color=color, lw=1.5, label=label)
    ax_parts.set(xlabel="iteration", yscale="log",
                 title=f"Loss terms (moving average over {window} iteration{'s' * (window > 1)})")
    per_epoch = int((h["epoch"] == h["epoch"][0]).sum()) if n else 0
    spans = epoch_spans(outright_epochs(shares)) if n else []
    for ax in (ax_gd, ax_parts):
        for i, (first, last) in enumerate(spans):
            ax.axvspan((first - 1) * per_epoch + 0.5, last * per_epoch + 0.5, color="tab:red", alpha=0.12, lw=0,
                       label="epochs D won outright" if i == 0 and ax is ax_gd else None)
        if n:
            ax.secondary_xaxis("top", functions=(lambda x: x / per_epoch, lambda e: e * per_epoch)).set_xlabel("epoch")
        ax.legend(fontsize=9, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: not on the curves
    if shares:
        epochs, values = sorted(shares), [shares[e] for e in sorted(shares)]
        every = [v >= 1.0 - 1e-9 for v in values]
        axes[2].bar(epochs, values, width=0.9, color=["tab:red" if e else "lightcoral" for e in every])
        axes[2].set(xlabel="epoch", ylabel="share of iterations", ylim=(0, 1.3), yticks=[0, 0.25, 0.5, 0.75, 1],
                    title="Discriminator wins outright (D loss < 0.01)")
        kinds = (("tab:red", "in every iteration", any(every)), ("lightcoral", "in some", not all(every)))
        axes[2].legend(handles=[Patch(color=c, label=label) for c, label, seen in kinds if seen], fontsize=9,
                       loc="upper center", ncol=2)  # only the kinds of epoch this run has
    return fig


# ---------------------------------------------------------------- the study's frontier
def frontier_figure(report: dict) -> Figure:
    """PSNR against colourfulness for every method of a study (mean over seeds, with spread)."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    truth, gray = report["ground_truth"]["test"]["colourfulness"], report["gray"]["test"]["psnr_dataset_db"]["mean"]
    ax.axvline(truth, color="black", ls="--", lw=1, label=f"truth colourfulness {truth:.1f}")
    ax.axvspan(0.9 * truth, 1.1 * truth, color="black", alpha=0.06, label="within 10% of the truth")
    ax.axhline(gray, color="gray", ls=":", lw=1, label="gray copy's PSNR")
    ax.axhline(gray + 1.0, color="tab:green", ls=":", lw=1, label="gray + 1 dB")
    for i, (name, r) in enumerate(report["methods"].items()):
        m, chosen = r["test"]["colorize"], name == report.get("chosen")
        if "psnr_dataset_db" in m and "colourfulness" in m:
            ax.errorbar(m["colourfulness"]["mean"], m["psnr_dataset_db"]["mean"], xerr=m["colourfulness"]["std"],
                        yerr=m["psnr_dataset_db"]["std"], fmt="*" if chosen else "o", ms=16 if chosen else 8,
                        color=matplotlib.colormaps["tab20"](i % 20), label=name, capsize=2)
    ax.plot([0], [gray], "s", color="gray", ms=8, label="gray (copied to RGB)")
    ax.set(xlabel="colourfulness (Hasler & Suesstrunk)", ylabel="PSNR over the test set (dB)",
           title=f"PSNR vs colourfulness, test split through colorize ({report['seeds']} seeds, mean ± std)")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return fig


# ---------------------------------------------------------------- Figs. 4-8
def image_rows(rows, title: str, height: float) -> Figure:
    """One strip of images per (label, images [N, 3, H, W]) row."""
    fig = Figure(figsize=(0.75 * len(rows[0][1]) + 0.4, height), layout="constrained")
    for ax, (label, images) in zip(fig.subplots(len(rows), 1, subplot_kw={"xticks": [], "yticks": []}), rows):
        ax.imshow(torch.cat(list(images), dim=2).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(label, loc="left", fontsize=9, pad=2)
    fig.suptitle(title)
    return fig


def missing_epochs(epochs, by_epoch) -> None:
    missing = sorted(set(epochs) - set(by_epoch))
    if missing:
        raise rundir.RunDirError(f"no samples for epoch(s) {missing}; available: {sorted(by_epoch)}")


def sample_grid(run_dir, epoch: Optional[int] = None, samples=None, note: str = "") -> Figure:
    """Figs. 4-7: gray input, generated colour and ground truth after `epoch` (default: the last).
    `samples`: `rundir.read_samples(run_dir)` where read already; `note`: a second title line."""
    gray, truth, by_epoch = samples or rundir.read_samples(run_dir)
    if not by_epoch:
        raise rundir.RunDirError(f"{run_dir} has no per-epoch samples yet: train at least one epoch")
    epoch = max(by_epoch) if epoch is None else epoch
    missing_epochs([epoch], by_epoch)
    rows = [("grayscale", gray), ("generated", by_epoch[epoch]), ("ground truth", truth)]
    return image_rows(rows, f"Output at epoch {epoch}" + (f"\n{note}" if note else ""), 3.0)


def pick_epochs(available: Sequence[int], count: int = 6) -> list[int]:
    """`count` epochs spread evenly from the first to the last available one."""
    available = sorted(available)
    if len(available) <= count:
        return available
    return sorted({available[round(i * (len(available) - 1) / (count - 1))] for i in range(count)})


def across_epochs(run_dir, samples=None) -> Figure:
    """Fig. 8: one row for each of six epochs spread over the run, between the gray input and the ground truth."""
    gray, truth, by_epoch = samples or rundir.read_samples(run_dir)
    rows = [("grayscale", gray), *((f"epoch {e}", by_epoch[e]) for e in pick_epochs(by_epoch)), ("ground truth", truth)]
    return image_rows(rows, "Reconstructions across epochs", 1.0 * len(rows) + 0.3)


def provenance(run_dir, out) -> dict:
    """What produced a run's figures: preset and every parameter, data, device, time, commit; the run
    directory relative to `out`, so the file stays true when the repository moves."""
    info, cfg = rundir.read_run_info(run_dir), rundir.read_config(run_dir)
    where = os.path.relpath(Path(run_dir).resolve(), Path(out).resolve())
    return {"run_dir": where, "preset": cfg.preset, "config": cfg.to_dict(),
            **{k: info.get(k) for k in ("status", "epochs_done", "iterations_done", "data_source", "train_images",
                                        "device", "device_name", "torch", "python", "wall_time_s", "git_commit")}}


def save_figures(run_dir, out, sample_epochs: Optional[Sequence[int]] = None) -> list[Path]:
    """Every figure of a run as PNG, and provenance.json, into `out`; returns the paths. Epochs without
    samples are a RunDirError before anything is written; a damaged sample image is left out with a
    RunDirWarning. Sample grids in `out` that this run did not write (another run's, or a longer run's)
    are removed, so the folder shows one run only."""
    out = Path(out)
    missing_epochs(sample_epochs or (), rundir.sample_epochs(run_dir))
    figures = {"loss_curves.png": loss_curves(run_dir)}  # everything is read before the first file is written
    try:
        samples = rundir.read_samples(run_dir)
    except rundir.RunDirError as exc:
        if not (Path(run_dir) / "samples" / "truth.png").exists():  # no samples at all: not a run
            raise
        warnings.warn(f"{exc}; the sample figures are left out", rundir.RunDirWarning, stacklevel=2)
    else:
        for e in sample_epochs or pick_epochs(samples[2], 4):
            if e in samples[2]:  # a damaged one was named by read_samples
                figures[f"samples_epoch_{e:04d}.png"] = sample_grid(run_dir, e, samples=samples)
        figures["across_epochs.png"] = across_epochs(run_dir, samples=samples)
    for name, fig in figures.items():  # the folder is made by the first write
        save_png(fig, out / name, dpi=130)
    for stale in set(out.glob("samples_epoch_*.png")) - {out / name for name in figures}:
        stale.unlink()
    rundir.write_json(out / "provenance.json", provenance(run_dir, out))
    return [out / name for name in figures] + [out / "provenance.json"]

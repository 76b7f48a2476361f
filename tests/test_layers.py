"""The house rules of colorlib's imports: running a trained generator never needs the trainer."""
from __future__ import annotations

import subprocess
import sys


def test_colorize_evaluation_and_shipping_do_not_import_the_trainer():
    code = ("import sys; from colorlib.inference.colorize import load_model, colorize; import colorlib.lab.metrics; "
            "import colorlib.lab.photos; import colorlib.lab.ship; load_model(); "
            "print(sorted(m for m in sys.modules if m.startswith('colorlib.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert "colorlib.inference.checkpoints" in loaded and "colorlib.engine.trainer" not in loaded, loaded


def test_the_trainer_still_offers_its_old_names():
    from colorlib.inference import checkpoints
    from colorlib.runs import device
    assert training.load_generator is checkpoints.load_generator
    assert training.pick_device is device.pick_device

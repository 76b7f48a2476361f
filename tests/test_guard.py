"""The restructurings and speed-ups of colorlib change no number of the paper's recipe or of the
guarded variants: the losses of a smoke run agree with the stored ones within rounding, on any CPU
(tests/guard_fingerprints.py --compare checks bits between two commits on one machine)."""
from __future__ import annotations

import json
import math

import pytest

from guard_fingerprints import GUARDED, STORED, fingerprint

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", GUARDED)
def test_the_smoke_run_gives_the_stored_losses(method, cifar10_dir, tmp_path):
    pinned = json.loads(STORED.read_text())["methods"][method]
    found = fingerprint(method, str(cifar10_dir), tmp_path / method)
    assert len(found["losses"]) == len(pinned["losses"])
    for got, want in zip(found["losses"], pinned["losses"]):
        assert all(math.isclose(g, w, rel_tol=2e-3, abs_tol=1e-5) for g, w in zip(got, want)), (got, want)

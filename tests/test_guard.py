"""The restructurings and speed-ups of colorlib change no number of the paper's recipe or of the
guarded variants (tests/guard_fingerprints.py says how the fingerprints were made)."""
from __future__ import annotations

import json
import math

import pytest

from guard_fingerprints import GUARDED, STORED, environment, fingerprint

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", GUARDED)
def test_the_smoke_run_gives_the_stored_numbers(method, data_dir, tmp_path):
    stored = json.loads(STORED.read_text())
    pinned = stored["methods"][method]
    found = fingerprint(method, str(data_dir), tmp_path / method)
    if {k: stored[k] for k in environment()} == environment():  # the same kernels: the same bits
        assert found["history_sha256"] == pinned["history_sha256"], "history.csv changed"
        assert found["weights_sha256"] == pinned["weights_sha256"], "the generator's weights changed"
    else:  # other kernels round differently: the losses must still agree closely
        for got, want in zip(found["losses"], pinned["losses"]):
            assert all(math.isclose(g, w, rel_tol=2e-3, abs_tol=1e-5) for g, w in zip(got, want)), (got, want)
    assert len(found["losses"]) == len(pinned["losses"])

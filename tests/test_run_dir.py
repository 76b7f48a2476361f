"""The run directory's files: atomic writes with short temporary names, JSON that is an object,
tables rebuilt from last.pt when damaged, and the lock."""
from __future__ import annotations

import os

import pytest

from colorlib.runs import rundir


def test_an_atomic_write_works_for_a_250_byte_name_and_leaves_no_temporary(tmp_path):
    path = tmp_path / ("x" * 246 + ".png")
    rundir.atomic_write_bytes(path, b"data")
    assert path.read_bytes() == b"data" and os.listdir(tmp_path) == [path.name]


def test_a_refused_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    rundir.write_json(path, {"a": 1})
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(28, "No space left", src)))
    with pytest.raises(OSError) as caught:
        rundir.write_json(path, {"a": 2})
    assert caught.value.filename == str(path) and rundir.read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["run.json"]


@pytest.mark.parametrize("text", ["[1, 2]", "{", "3"])
def test_json_that_is_not_an_object_is_one_line(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(rundir.RunDirError, match="config.json") as caught:
        rundir.read_config(tmp_path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["history.csv", "epochs.csv"])
@pytest.mark.parametrize("how", ["truncated", "garbled", "deleted"])
def test_a_damaged_table_is_rebuilt_from_last_pt(smoke_run, smoke_run_copy, name, how):
    path, good = smoke_run_copy / name, (smoke_run.run_dir / name).read_bytes()
    if how == "deleted":
        path.unlink()
    else:
        path.write_bytes(good[:len(good) // 2] if how == "truncated" else good.replace(b",", b";", 3))
    with pytest.warns(rundir.RunDirWarning, match=name):
        (rundir.read_history if name == "history.csv" else rundir.read_epochs)(smoke_run_copy)
    assert path.read_bytes() == good


def test_a_damaged_table_without_a_checkpoint_is_one_line(smoke_run_copy):
    (smoke_run_copy / "checkpoints" / "last.pt").unlink()
    (smoke_run_copy / "history.csv").write_text("garbage")
    with pytest.raises(rundir.RunDirError, match="history.csv is damaged"):
        rundir.read_history(smoke_run_copy)


def test_the_lock_refuses_a_second_holder_and_is_gone_when_released(tmp_path):
    first, second = rundir.RunLock(tmp_path / "run"), rundir.RunLock(tmp_path / "run")
    first.acquire()
    with pytest.raises(rundir.RunDirError, match=f"{tmp_path / 'run'} is in use by another training"):
        second.acquire()
    first.release()
    assert not (tmp_path / "run").exists()  # made by the lock, empty: removed
    second.acquire()
    second.release()

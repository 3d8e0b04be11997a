"""The experiment grid (labutils.course.grid): contents and order, resuming, failures, bad input, and the same
table serially, on loky workers and on a local Dask cluster; the Dask client's errors; minmax_within.

The cells compute a seeded random linear classifier (float64) on seeded random inputs: deterministic on one
machine whatever the process or thread count.  Worker processes (loky, Dask) cannot import this test module,
so cloudpickle sends its functions by value.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import time
from pathlib import Path

import cloudpickle
import distributed
import joblib
import numpy as np
import pandas as pd
import pytest
import torch

from labutils.course import grid
from labutils.course.grid import SchedulerUnreachable, cell_key, comparable, dask_client, minmax_within, run_grid

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CELLS = [{"seed": seed, "scale": scale} for seed in (3, 1, 2) for scale in (0.5, 2.0)]  # not in key order
TIMING = ["torch_threads", "pid"]  # differ between serial and parallel runs by design


def toy_cell(params: dict) -> list[dict]:
    """Two rows (splits): accuracy and mean top-2 logit margin of a seeded random linear classifier."""
    flag = params.get("fail_flag")
    if flag and Path(flag).exists():
        raise RuntimeError(f"told to fail by {flag}")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(params["seed"])
    w = torch.randn(8, 3, generator=g, dtype=torch.float64) * params["scale"]
    rows = []
    for split in range(2):
        x = torch.randn(32, 8, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (32,), generator=g)
        logits = x @ w
        top2 = logits.topk(2, dim=1).values
        rows.append({"split": split, "accuracy": (logits.argmax(1) == y).double().mean(),  # 0-d tensor
                     "margin": (top2[:, 0] - top2[:, 1]).mean().numpy(),  # 0-d array
                     "torch_threads": torch.get_num_threads(), "pid": os.getpid(),
                     "compute_seconds": time.perf_counter() - t0})
    return rows


def counting(calls: list):
    def fn(params):
        calls.append(params)
        return toy_cell(params)
    return fn


def must_not_run(params):
    raise AssertionError(f"cell {params} was run again")


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return run_grid(CELLS, toy_cell, tmp_path_factory.mktemp("serial"), progress=False)


def test_serial_table_order_files(serial):
    table = serial.table
    assert list(table.columns) == ["cell", "seed", "scale", "split", "accuracy", "margin", "torch_threads", "pid",
                                   "compute_seconds"]
    assert set(table["pid"]) == {os.getpid()}
    assert (serial.n_run, serial.n_reused, len(serial.failed)) == (6, 0, 0)
    expected = [(c["seed"], c["scale"], split) for c in CELLS for split in (0, 1)]
    assert list(table[["seed", "scale", "split"]].itertuples(index=False, name=None)) == expected
    assert list(table["cell"]) == [cell_key(c) for c in CELLS for _ in (0, 1)]
    for (_, row), direct in zip(table.iterrows(), [r for c in CELLS for r in toy_cell(c)]):
        assert row["accuracy"] == direct["accuracy"].item() and row["margin"] == direct["margin"].item()
    assert table["accuracy"].dtype == float and table["split"].dtype == np.int64
    assert serial.path == serial.path.parent / "grid.csv"
    pd.testing.assert_frame_equal(pd.read_csv(serial.path), table)
    files = sorted(p.name for p in (serial.path.parent / "cells").iterdir())
    assert files == sorted(f"{cell_key(c)}.json" for c in CELLS)
    record = json.loads((serial.path.parent / "cells" / files[0]).read_text())
    assert record["status"] == "ok" and record["attempts"] == 1 and len(record["rows"]) == 2 and record["seconds"] > 0
    assert not (serial.path.parent / "failed.csv").exists()


def test_cell_key_is_readable_and_order_free():
    key = cell_key({"seed": 3, "attack": "pgd linf", "budgets": [1, 2]})
    assert re.fullmatch(r"pgd-linf_3-[0-9a-f]{12}", key)
    assert key == cell_key({"budgets": [1, 2], "attack": "pgd linf", "seed": 3}) != cell_key({"seed": 3, "attack": "x"})


def test_resume_runs_nothing_then_only_the_new_cell(tmp_path):
    first = run_grid(CELLS, toy_cell, tmp_path, progress=False)
    again = run_grid(CELLS, must_not_run, tmp_path, progress=False)
    assert (again.n_run, again.n_reused, len(again.failed)) == (0, 6, 0)
    pd.testing.assert_frame_equal(again.table, first.table)
    calls = []
    grown = run_grid([*CELLS, {"seed": 7, "scale": 1.0}], counting(calls), tmp_path, progress=False)
    assert calls == [{"seed": 7, "scale": 1.0}] and (grown.n_run, grown.n_reused) == (1, 6)
    assert len(grown.table) == 14 and list(grown.table["seed"].iloc[-2:]) == [7, 7]
    pd.testing.assert_frame_equal(grown.table.iloc[:12], first.table)


def test_failed_cell_is_recorded_then_retried(tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    cells = [{**c, "fail_flag": str(flag) if c == CELLS[2] else None} for c in CELLS]
    out = tmp_path / "grid"
    first = run_grid(cells, toy_cell, out, progress=False)
    assert len(first.table) == 10 and first.n_run == 6
    assert list(first.failed.columns) == ["cell", "seed", "scale", "fail_flag", "error", "attempts"]
    failure = first.failed.iloc[0]
    assert failure["cell"] == cell_key(cells[2]) and failure["attempts"] == 1
    assert failure["error"] == f"RuntimeError: told to fail by {flag}"
    record = json.loads((out / "cells" / f"{failure['cell']}.json").read_text())
    assert record["status"] == "error" and "toy_cell" in record["traceback"] and record["rows"] == []
    assert pd.read_csv(out / "failed.csv")["error"].tolist() == [failure["error"]]
    flag.unlink()
    kept = run_grid(cells, must_not_run, out, retry_failed=False, progress=False)
    assert (kept.n_run, kept.n_reused, len(kept.failed)) == (0, 6, 1)
    retried = run_grid(cells, toy_cell, out, progress=False)
    assert (retried.n_run, retried.n_reused, len(retried.failed)) == (1, 5, 0)
    assert len(retried.table) == 12 and list(retried.table["cell"][4:6]) == [failure["cell"]] * 2
    assert json.loads((out / "cells" / f"{failure['cell']}.json").read_text())["attempts"] == 2
    assert not (out / "failed.csv").exists()


def test_unusable_cell_files_are_warned_about_and_rerun(tmp_path):
    first = run_grid(CELLS, toy_cell, tmp_path, progress=False)
    broken, other = (tmp_path / "cells" / f"{cell_key(c)}.json" for c in CELLS[:2])
    broken.write_text('{"cell": {"seed"')
    record = json.loads(other.read_text())
    other.write_text(json.dumps({**record, "cell": {"seed": 99, "scale": 0.5}}))
    calls = []
    with pytest.warns(UserWarning) as warned:
        again = run_grid(CELLS, counting(calls), tmp_path, progress=False)
    messages = " ".join(str(w.message) for w in warned)
    assert str(broken) in messages and str(other) in messages and "other parameters" in messages
    assert sorted(c["seed"] * 10 + c["scale"] for c in calls) == [30.5, 32.0] and again.n_run == 2
    pd.testing.assert_frame_equal(comparable(again.table), comparable(first.table))


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"duplicate cells: cell 2 repeats cell 0"):
        run_grid([{"a": 1, "b": 2}, {"a": 2}, {"b": 2, "a": 1}], toy_cell, tmp_path)
    with pytest.raises(TypeError, match=r"cell 1 .*'seed'.*not JSON-serialisable"):
        run_grid([{"seed": 1}, {"seed": {1, 2}}], toy_cell, tmp_path)
    with pytest.raises(ValueError, match="non-empty"):
        run_grid([], toy_cell, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        run_grid(CELLS, toy_cell, tmp_path / "file")
    bad = run_grid([{"seed": 1}, {"seed": 2}, {"seed": 3}],
                   lambda p: {"seed": 0} if p["seed"] == 1 else {"v": [1, 2]} if p["seed"] == 2 else {"v": 1.5},
                   tmp_path / "bad", progress=False)
    errors = bad.failed.set_index("seed")["error"]
    assert "ValueError" in errors[1] and "['seed']" in errors[1] and "clash" in errors[1]
    assert "TypeError" in errors[2] and "'v'" in errors[2] and "not a JSON scalar" in errors[2]
    assert bad.table[["seed", "v"]].values.tolist() == [[3, 1.5]]


def test_worker_threads_set_in_cells_and_restored(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = run_grid(CELLS[:2], toy_cell, tmp_path / "one", worker_threads=1, progress=False)
        assert set(one.table["torch_threads"]) == {1} and torch.get_num_threads() == 2
        own = run_grid(CELLS[:2], toy_cell, tmp_path / "own", progress=False)  # serial: the process's setting
        assert set(own.table["torch_threads"]) == {2}
        assert grid._worker_threads(None, None) is None and grid._worker_threads(3, 2) == 3
        assert grid._worker_threads(None, 2) == 1
        with joblib.parallel_config(backend="loky", n_jobs=2):
            assert grid._worker_threads(None, None) == 1 and grid._worker_threads(None, 1) is None
        with joblib.parallel_config(backend="threading", n_jobs=2):  # threads share this process's torch
            assert grid._worker_threads(None, None) is None
        with pytest.raises(ValueError, match="worker_threads"):
            run_grid(CELLS, toy_cell, tmp_path / "bad", worker_threads=0)
    finally:
        torch.set_num_threads(before)


def test_loky_gives_the_serial_table(serial, tmp_path):
    with joblib.parallel_config(backend="loky", n_jobs=2):
        parallel = run_grid(CELLS, toy_cell, tmp_path, progress=False)
    assert parallel.n_run == 6 and set(parallel.table["torch_threads"]) == {1}
    assert os.getpid() not in set(parallel.table["pid"])  # ran in worker processes
    pd.testing.assert_frame_equal(comparable(parallel.table, TIMING), comparable(serial.table, TIMING))
    pd.testing.assert_frame_equal(parallel.table.drop(columns=TIMING + ["compute_seconds"]),
                                  serial.table.drop(columns=TIMING + ["compute_seconds"]))  # cells order kept


def test_dask_gives_the_serial_table(serial, tmp_path):
    with dask_client(n_workers=2) as client:
        assert sum(client.ncores().values()) == 2
        with joblib.parallel_config(backend="dask"):
            local = run_grid(CELLS, toy_cell, tmp_path / "local", progress=False)
        with dask_client(client.scheduler.address, timeout=5) as connected, joblib.parallel_config(backend="dask"):
            assert connected is not client and distributed.get_client() is connected  # what joblib will use
            remote = run_grid(CELLS, toy_cell, tmp_path / "remote", progress=False)
        assert connected.status == "closed" and client.status == "running"
    assert client.status == "closed"
    for result in (local, remote):
        assert result.n_run == 6 and set(result.table["torch_threads"]) == {1}
        assert os.getpid() not in set(result.table["pid"])
        pd.testing.assert_frame_equal(comparable(result.table, TIMING), comparable(serial.table, TIMING))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_raises_and_runs_nothing(tmp_path):
    address, calls = f"tcp://127.0.0.1:{_free_port()}", []
    with pytest.raises(SchedulerUnreachable, match=re.escape(address)) as info:
        with dask_client(address, timeout=2), joblib.parallel_config(backend="dask"):
            run_grid(CELLS, counting(calls), tmp_path / "grid", progress=False)
    message = str(info.value)
    assert isinstance(info.value, ConnectionError) and "2 s" in message and "dask scheduler" in message
    assert "dask worker" in message and calls == [] and not (tmp_path / "grid").exists()


def test_silent_server_is_unreachable_not_a_hang():
    """A server that accepts the connection and never answers: distributed alone would wait forever."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        t0 = time.perf_counter()
        with pytest.raises(SchedulerUnreachable, match="never answered"):
            with dask_client(address, timeout=0.5):
                pass
        assert time.perf_counter() - t0 < 10


def test_minmax_within_groups():
    df = pd.DataFrame({"g": ["a", "a", "a", "a", "b", "b", "c", "c", "c"],
                       "v": [1.0, 3.0, 2.0, math.nan, 10.0, 10.0, 5.0, 0.0, 20.0]})
    out = minmax_within(df, "v", "g")
    expected = [0.0, 1.0, 0.5, math.nan, 0.0, 0.0, 0.25, 0.0, 1.0]
    np.testing.assert_allclose(out["v_scaled"], expected)
    inverted = minmax_within(df, "v", ["g"], name="strength", invert=True)
    np.testing.assert_allclose(inverted["strength"], [1.0, 0.0, 0.5, math.nan, 0.0, 0.0, 0.75, 1.0, 0.0])
    assert "v_scaled" not in df.columns and list(inverted.columns) == ["g", "v", "strength"]
    two = minmax_within(df.assign(h=[0, 0, 1, 1, 0, 0, 0, 0, 0]), "v", ["g", "h"])
    np.testing.assert_allclose(two["v_scaled"], [0.0, 1.0, 0.0, math.nan, 0.0, 0.0, 0.25, 0.0, 1.0])
    with pytest.raises(KeyError, match="'w'"):
        minmax_within(df, "v", ["g", "w"])


def test_comparable_drops_timings_and_sorts_by_cell():
    table = pd.DataFrame({"cell": ["b", "a", "a"], "x": [1, 2, 3], "fit_seconds": [0.1, 0.2, 0.3],
                          "seconds": [1, 2, 3], "wall": [5, 6, 7]})
    out = comparable(table, timing_columns=["wall"])
    assert list(out.columns) == ["cell", "x"] and out.values.tolist() == [["a", 2], ["a", 3], ["b", 1]]
    assert list(out.index) == [0, 1, 2]

"""Session files: appended in committed chunks, self-describing, refused when unreadable."""

import h5py
import numpy as np
import pytest

from hil.session import FORMAT_VERSION, Session, SessionError, SessionWriter

ROW = np.dtype([("unit", "i8"), ("device", "S32"), ("outcome", "i1")])


def rows(unit, n):
    out = np.zeros(n, ROW)
    out["unit"] = unit
    out["device"] = b"w3-1"
    out["outcome"] = np.arange(n) % 2
    return out


def test_runs_and_records_read_back(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization", {"station": {"name": "bench"}, "seed": 3}) as writer:
        run = writer.start_run("bias_sweep", {"trials_per_point": 10, "pulse_width": "10us"})
        run.append("trials", rows(0, 10))
        run.append("trials", rows(1, 5))
        run.write_analysis("fits", {"w3-1": {"logistic": {"i50_a": 1e-3}}})
        run.finish("completed")
    with Session(path) as session:
        assert session.format_version == FORMAT_VERSION
        assert session.attrs["station"] == {"name": "bench"} and session.attrs["seed"] == 3
        (run,) = session.runs
        assert run.protocol == "bias_sweep" and run.status == "completed"
        assert run.parameters == {"trials_per_point": 10, "pulse_width": "10us"}
        trials = run.table("trials")
        assert trials.size == 15 and list(np.unique(trials["unit"])) == [0, 1]
        assert run.analysis("fits")["w3-1"]["logistic"]["i50_a"] == 1e-3


def test_rows_past_the_committed_count_are_ignored(tmp_path):
    """A chunk half-written when the process died is not read as data."""
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization") as writer:
        writer.start_run("bias_sweep", {}).append("trials", rows(0, 8))
    with h5py.File(path, "a") as f:  # what a kill between resize and commit leaves behind
        dataset = f["runs/000/trials"]
        dataset.resize((12,))
    with Session(path) as session:
        assert session.runs[0].table("trials").size == 8
        assert session.runs[0].status == "running"


def test_existing_file_is_not_overwritten(tmp_path):
    path = tmp_path / "s.h5"
    SessionWriter.create(path, "characterization").close()
    with pytest.raises(SessionError, match="already exists: pass --resume"):
        SessionWriter.create(path, "characterization")


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    SessionWriter.create(path, "characterization").close()
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(SessionError, match=f"format version {FORMAT_VERSION + 1}.*upgrade hil"):
        Session(path)
    with pytest.raises(SessionError, match="upgrade hil"):
        SessionWriter.append_to(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization") as writer:
        writer.start_run("bias_sweep", {}).append("trials", rows(0, 5000))
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(SessionError, match="truncated"):
        Session(truncated)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(SessionError, match="not a hil session"):
        Session(foreign)
    with pytest.raises(SessionError, match="no such session"):
        Session(tmp_path / "missing.h5")

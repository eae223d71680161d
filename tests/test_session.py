"""Session files: runs commit unit by unit, a unit in flight is never read nor kept, files are self-describing."""

import h5py
import numpy as np
import pytest

from hil.session import FORMAT_VERSION, OutputExistsError, Session, SessionError, SessionWriter
from protocols.records import Descriptor, Field

COUNTS = Descriptor("counts", (Field("device", "S32"), Field("value", "f8", "ohm", "a reading")), "test table")
EVENTS = Descriptor("events", (Field("code", "i4"),))


def rows(unit, n, value=1.0):
    out = COUNTS.rows(n, unit)
    out["device"] = b"w3-1"
    out["value"] = value + np.arange(n)
    return out


def new_run(writer, index=0):
    run = writer.run(index)
    run.set_attrs(protocol="test", parameters={"n": 3})
    run.declare(COUNTS)
    run.declare(EVENTS)
    return run


def test_runs_commit_units_and_read_back_with_their_descriptors(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization", {"station": {"name": "bench"}, "seed": 3}) as writer:
        run = new_run(writer)
        run.commit(0, {"counts": rows(0, 10)}, n_trials=10)
        run.commit(1, {"counts": rows(1, 5), "events": EVENTS.rows(2, 1)}, n_trials=5)
        run.write_analysis("fits", {"w3-1": {"logistic": {"i50_a": 1e-3}}})
        run.finish("completed")
    with Session(path) as session:
        assert session.format_version == FORMAT_VERSION
        assert session.attrs["station"] == {"name": "bench"} and session.attrs["seed"] == 3
        (view,) = session.runs
        assert view.protocol == "test" and view.status == "completed" and view.parameters == {"n": 3}
        assert set(view.descriptors) == {"counts", "events"}
        assert view.descriptors["counts"].dtype == COUNTS.dtype
        assert view.descriptors["counts"].all_fields[2].unit == "ohm"
        counts = view.table("counts")
        assert counts.size == 15 and list(np.unique(counts["unit"])) == [0, 1]
        assert view.table("events").size == 2
        units = view.units()
        assert list(units["unit"]) == [0, 1] and list(units["n_trials"]) == [10, 5]
        assert view.analysis("fits")["w3-1"]["logistic"]["i50_a"] == 1e-3


def test_a_unit_in_flight_is_neither_read_nor_kept_on_resume(tmp_path):
    """Rows written after the last commit (the process died mid-unit) are ignored, then dropped by a resume."""
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization") as writer:
        run = new_run(writer)
        run.commit(0, {"counts": rows(0, 8)})
        run.stage("counts", rows(1, 4))  # the next unit's rows, never committed
        run.stage("events", EVENTS.rows(3, 1))
        writer.flush()
    with Session(path) as session:
        assert session.runs[0].table("counts").size == 8 and session.runs[0].table("events").size == 0
    with h5py.File(path, "r") as f:
        assert f["runs/000/counts"].shape[0] == 12  # the rows are in the file, past the commit
    with SessionWriter.resume(path) as writer:
        run = writer.runs()[0]
        assert run.committed_units() == {0}
        run.commit(1, {"counts": rows(1, 4, value=7.0)})
    with Session(path) as session:
        counts = session.runs[0].table("counts")
        assert counts.size == 12 and list(np.unique(counts["unit"], return_counts=True)[1]) == [8, 4]
        assert np.all(counts["value"][counts["unit"] == 1] == 7.0 + np.arange(4))


def test_a_commit_cut_between_its_two_flushes_does_not_count(tmp_path):
    """The commit log's line is written before it is counted: a kill in between leaves the unit out."""
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization") as writer:
        run = new_run(writer)
        run.commit(0, {"counts": rows(0, 3)})
        run.commit(1, {"counts": rows(1, 3)})
    with h5py.File(path, "a") as f:  # what a kill after the first flush of unit 1 leaves behind
        f["runs/000/units"].attrs["n_committed"] = 1
        f["runs/000/counts"].attrs["n_committed"] = 3
    with Session(path) as session:
        assert session.runs[0].table("counts").size == 3
    with SessionWriter.resume(path) as writer:
        assert writer.runs()[0].committed_units() == {0}


def test_state_alternates_between_two_slots_and_the_last_commit_wins(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "training") as writer:
        run = new_run(writer)
        for unit in range(3):
            run.commit(unit, {}, state=f"state after unit {unit}".encode() * (unit + 1))
        assert run.last_state() == b"state after unit 2" * 3
    with h5py.File(path, "a") as f:
        assert sorted(f["runs/000/state"]) == ["0", "1"]
        f["runs/000/units"].attrs["n_committed"] = 2  # unit 2 never committed: its state slot is not used
    with SessionWriter.resume(path) as writer:
        assert writer.runs()[0].last_state() == b"state after unit 1" * 2


def test_an_existing_file_is_replaced_only_when_forced(tmp_path):
    path = tmp_path / "s.h5"
    SessionWriter.create(path, "characterization").close()
    with pytest.raises(OutputExistsError, match="already exists: pass --resume to continue it, --force"):
        SessionWriter.create(path, "characterization")
    SessionWriter.create(path, "training", overwrite=True).close()
    with Session(path) as session:
        assert session.kind == "training"


def test_every_start_of_a_session_is_counted(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization") as writer:
        assert writer.begin_attempt() == 1
    with SessionWriter.resume(path) as writer:
        assert writer.begin_attempt() == 2
    with Session(path) as session:
        assert session.attrs["attempts"] == 2 and [a["attempt"] for a in session.attrs["attempt_log"]] == [1, 2]


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    SessionWriter.create(path, "characterization").close()
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(SessionError, match=f"format version {FORMAT_VERSION + 1}.*upgrade hil"):
        Session(path)
    with pytest.raises(SessionError, match="upgrade hil"):
        SessionWriter.resume(path)


def test_version_1_files_are_read_but_not_continued(tmp_path):
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "hil-session", "format_version": 1, "kind": "characterization"})
        run = f.create_group("runs/000")
        run.attrs.update({"protocol": "bias_sweep", "status": "completed", "parameters": '{"seed": 1}'})
        table = run.create_dataset("trials", data=rows(0, 6), maxshape=(None,))
        table.attrs["n_committed"] = 4
    with Session(path) as session:
        assert session.format_version == 1 and session.runs[0].table("trials").size == 4
        assert session.runs[0].parameters == {"seed": 1}
    with pytest.raises(SessionError, match="continues only version 2"):
        SessionWriter.resume(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter.create(path, "characterization") as writer:
        new_run(writer).commit(0, {"counts": rows(0, 5000)})
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
    with pytest.raises(SessionError, match="nothing to resume"):
        SessionWriter.resume(tmp_path / "missing.h5")

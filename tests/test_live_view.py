"""The live view over HTTP: ``hil watch`` follows a session while ``hil characterize`` writes it, refuses
requests without its token off loopback, and refuses a missing file or a port in use in one line."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from argparse import Namespace
from urllib.parse import urlsplit

import numpy as np
import pytest

from hil.live.launch import live_view
from hil.session import Session
from instruments.config_files import EMULATED_SESSION, EMULATED_STATION_FILE
from tests.test_faults import small_sweep

HIL = [sys.executable, "-m", "hil.cli"]
DEVICES = ("w3-1", "w10-1")
POLL_S = 0.2


def live_sweep(tmp_path):
    """A bias sweep of 2 devices × 16 points, 2 units of 5 trials per point, on the naive path: a second or
    two of measuring on the emulated station (longer on a loaded machine), so the page sees it grow."""
    return small_sweep(tmp_path, path="naive", trials=10, batch=5, devices=DEVICES)


def characterize(station, protocol, out):
    return subprocess.Popen([*HIL, "characterize", "--station", str(station), "--protocol", str(protocol),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def get(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as reply:
        return reply.status, reply.headers, reply.read()


def state(url):
    return json.loads(get(url + "api/state")[2])


def n_points(run):
    return sum(len(curve["p"]) for curve in run["curves"])


def test_the_state_follows_a_session_while_it_is_written(tmp_path):
    out = tmp_path / "run.h5"
    with live_view(Namespace(live=0), out, interval_s=POLL_S) as url:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        assert state(url)["stale"]  # the run has not created its file yet: said so, not an error
        with pytest.raises(urllib.error.HTTPError) as refused:  # a name of another site's (DNS rebinding)
            get(url + "api/state", {"Host": f"lab.example:{urlsplit(url).port}"})
        assert refused.value.code == 403
        run = characterize(EMULATED_STATION_FILE, live_sweep(tmp_path), out)
        seen = []  # (trials done, P(I) points, rate, ETA) of every read while the run is running
        while run.poll() is None:
            runs = state(url)["runs"]
            if runs and runs[0]["status"] == "running":
                p = runs[0]["progress"]
                seen.append((p["trials_done"], n_points(runs[0]), p["rate"], p["eta_s"]))
            time.sleep(POLL_S / 2)
        assert run.returncode == 0, run.stderr.read()
        deadline = time.monotonic() + 10
        while (final := state(url)["runs"][0])["status"] == "running" and time.monotonic() < deadline:
            time.sleep(POLL_S / 2)
    done = [trials for trials, *_ in seen]
    assert done == sorted(done) and len({d for d in done if d > 0}) >= 2, seen  # grew, unit by unit
    assert len({points for _, points, *_ in seen if points > 0}) >= 2, seen
    assert any(rate and rate > 0 and eta is not None and eta >= 0 for *_, rate, eta in seen), seen
    assert final["status"] == "completed" and final["protocol"] == "bias_sweep"
    assert final["progress"] | {"rate": None} == {"units_done": 64, "n_units": 64, "trials_done": 320,
                                                  "n_trials": 320, "rate": None, "rate_unit": "trials/s",
                                                  "eta_s": None}
    # the points and intervals are the session's own analysis, and every device has its running fit
    with Session(out) as s:
        curves = s.runs[0].analysis("curves")
    for curve in final["curves"]:
        rows = curves[curves["device"] == curve["device"].encode()]
        np.testing.assert_allclose(curve["current_a"], rows["amplitude_a"])
        np.testing.assert_allclose(curve["p"], rows["p"])
        np.testing.assert_allclose(curve["ci_low"], rows["ci_low"])
        np.testing.assert_allclose(curve["ci_high"], rows["ci_high"])
        assert min(curve["current_a"]) < curve["fit"]["i50_a"] < max(curve["current_a"])
    assert sorted(c["device"] for c in final["curves"]) == sorted(DEVICES)
    assert final["errors"]["instrument_errors"] == [] and final["errors"]["stopped"] == ""


def test_a_training_session_shows_its_loss_and_accuracies_per_epoch(tmp_path):
    from hil.neurons import SimBackend
    from hil.neurons.layers import NeuronConfig
    from hil.training.config import TrainConfig
    from hil.training.datasets import load_digits
    from hil.training.training_run import train_to_session

    out = tmp_path / "training.h5"
    config = TrainConfig(hidden=(12,), epochs=2, eval_samples=1)
    train_to_session(out, load_digits(seed=0), SimBackend.virtual(12, seed=1), {}, config, NeuronConfig(),
                     progress=False)
    with live_view(Namespace(live=0), out) as url:
        shown = state(url)
    with Session(out) as s:
        epochs = s.runs[0].table("epochs")
    assert shown["kind"] == "training" and len(shown["runs"]) == 1
    run = shown["runs"][0]
    assert (run["protocol"], run["role"], run["status"]) == ("training", "hil", "completed")
    for name in ("epoch", "loss", "train_accuracy", "test_accuracy"):
        np.testing.assert_allclose(run["epochs"][name], epochs[name])
    assert run["progress"]["units_done"] == run["progress"]["n_units"] > 0 and run["curves"] == []


def test_off_loopback_every_request_needs_the_printed_token():
    with live_view(Namespace(live=0, live_host="0.0.0.0"), EMULATED_SESSION) as url:
        token = url.split("?token=", 1)[1]
        base = f"http://127.0.0.1:{urlsplit(url).port}/"
        for path in ("", "api/state", "static/live.js", "?token=wrong" + token):
            with pytest.raises(urllib.error.HTTPError) as refused:
                get(base + path)
            assert refused.value.code == 403
        status, headers, page = get(f"{base}?token={token}")
        assert status == 200 and b"static/live.js" in page
        cookie = headers["Set-Cookie"].split(";", 1)[0]  # the page's own requests carry it
        runs = json.loads(get(base + "api/state", {"Cookie": cookie})[2])["runs"]
        assert [r["protocol"] for r in runs] == ["channel_resistance", "bias_sweep", "hysteresis_loop"]
        assert len(runs[2]["loops"]) == 12 and len(runs[0]["tables"][0]["rows"]) == 12
        assert get(base + "static/plotly-basic.min.js", {"Cookie": cookie})[0] == 200


def refused(*args):
    return subprocess.Popen([*HIL, "watch", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_missing_file_a_file_not_a_session_or_a_port_in_use_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.h5").write_text("not a session")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        missing, other = refused(tmp_path / "nothing.h5"), refused(tmp_path / "notes.h5")
        busy = refused(EMULATED_SESSION, "--port", port)
        for proc in (missing, other, busy):
            proc.stderr = proc.communicate()[1]
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert f"{tmp_path / 'nothing.h5'}: no such session file" in missing.stderr
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert f"{tmp_path / 'notes.h5'}: cannot be read as an HDF5 session" in other.stderr
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1, busy.stderr
    assert f"port {port} on 127.0.0.1 is in use; choose another with --port" in busy.stderr


def test_characterize_live_prints_the_url_of_a_page_that_follows_the_run_and_stops_with_it(tmp_path):
    out = tmp_path / "run.h5"
    run = subprocess.Popen([*HIL, "characterize", "--station", str(EMULATED_STATION_FILE), "--protocol",
                            str(live_sweep(tmp_path)), "--out", str(out), "--live", "--progress-every", "0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = run.stderr.readline()  # printed before the first trial
        assert first.startswith("live view: http://127.0.0.1:"), first
        url = first.split()[-1]
        shown = state(url)  # the page answers while the run goes on
        assert shown["runs"] == [] or shown["runs"][0]["protocol"] == "bias_sweep"
    finally:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    with pytest.raises(urllib.error.URLError):  # the page went with the run
        state(url)


def test_the_page_goes_when_a_live_run_is_killed(tmp_path):
    run = subprocess.Popen([*HIL, "characterize", "--station", str(EMULATED_STATION_FILE), "--protocol",
                            str(live_sweep(tmp_path)), "--out", str(tmp_path / "run.h5"), "--live",
                            "--progress-every", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = run.stderr.readline().split()[-1]
    state(url)
    run.kill()  # SIGKILL: no finally runs in the measuring process
    run.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            state(url)
        except OSError:  # refused (URLError), or cut off mid-reply as the watcher ended
            return  # the watcher noticed and ended: nothing left serving, the port free
        time.sleep(0.2)
    raise AssertionError(f"the live view at {url} still serves after its run was killed")

"""The live view in a real browser (headless Chromium, the distribution's): during an emulated
characterization the page's plotted P(I) points grow, and the instrument error that stops the run is shown.
Skipped where no Chromium and ChromeDriver are installed (CI installs Debian's ``chromium chromium-driver``)."""

import contextlib
import shutil
import time
from argparse import Namespace

import pytest

from hil.live.launch import live_view
from instruments.config_files import EMULATED_STATION_FILE
from sim_backend.emulated.probe_station import EmulatedStation
from tests.test_faults import served_station_file
from tests.test_live_view import POLL_S, characterize, live_sweep

POINTS = "return document.querySelectorAll('.plot.pi g.points path.point').length"
ERRORS = "return [...document.querySelectorAll('#errors:not([hidden]) li.instrument-error')].map(e => e.textContent)"
# the source meter rejects this message (about three quarters into the sweep), as a real one rejects a command
RUN_TEXT = ("return [document.querySelector('.run .progress-text').textContent, "
            "document.querySelector('.run .status').textContent]")
REJECTED_MESSAGE = 2001  # of about 3,000: a command (every 4th message here is a :READ? query)
TIMEOUT_S = 60


def chromium():
    """A headless Chromium driven through the system's ChromeDriver (nothing downloaded), or a skip."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("no Chromium and ChromeDriver installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1800"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


@contextlib.contextmanager
def browser():
    page = chromium()
    try:
        yield page
    finally:
        page.quit()


def test_the_page_shows_the_points_grow_and_the_instrument_error_that_stopped_the_run(tmp_path):
    out = tmp_path / "run.h5"
    with browser() as page, EmulatedStation(EMULATED_STATION_FILE) as emulated, \
            live_view(Namespace(live=0), out, interval_s=POLL_S) as url:
        page.get(url)  # before the run has created its file: the page waits for it
        emulated.instruments["source_meter"].faults.error_after_messages = REJECTED_MESSAGE
        run = characterize(served_station_file(emulated, tmp_path), live_sweep(tmp_path), out)
        counts, errors = [], []
        deadline = time.monotonic() + TIMEOUT_S
        while not errors and time.monotonic() < deadline:
            counts.append(page.execute_script(POINTS))
            errors = page.execute_script(ERRORS)
            time.sleep(POLL_S / 2)
        assert run.wait(TIMEOUT_S) == 3, run.stderr.read()
        # read in the page itself, in one go: the page re-renders as it polls (an element found from here could be
        # replaced before its text is read)
        progress, status = page.execute_script(RUN_TEXT)
    plotted = [n for n in counts if n]
    assert plotted == sorted(plotted) and len(set(plotted)) >= 2, counts  # the points grew while it ran
    assert len(errors) == 1 and errors[0].startswith("source_meter (Keithley2450) reports -200: Execution error"), \
        errors
    assert "run 000" in errors[0] and ("device w3-1" in errors[0] or "device w10-1" in errors[0])
    assert status == "failed" and progress.startswith("units ")

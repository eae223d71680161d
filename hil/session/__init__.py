"""Session files (HDF5): one file per measurement or training run. Only this package touches h5py.

The layout and its version are documented in ``docs/session-format.md``.
"""

from hil.session.format import FORMAT_VERSION, OutputExistsError, SessionError
from hil.session.reader import RunView, Session
from hil.session.writer import RunWriter, SessionWriter
from protocols.engine import COMPLETED, FAILED, INTERRUPTED, RUNNING, STATUSES

__all__ = ["COMPLETED", "FAILED", "FORMAT_VERSION", "INTERRUPTED", "RUNNING", "STATUSES", "OutputExistsError",
           "RunView", "RunWriter", "Session", "SessionError", "SessionWriter"]

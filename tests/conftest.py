"""Set-up shared by every test module."""

from __future__ import annotations

import signal

# Several tests press Ctrl-C (SIGINT) on the commands they start and check the safe stop. A runner that starts
# pytest with SIGINT ignored (a background job of a shell without job control) would hand that on to every
# command, which would then run to its end; the default Ctrl-C handling is restored here so that it is not.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

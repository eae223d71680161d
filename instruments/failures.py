"""The failures a lab user can act on, as one marker class.

A bad config file, a request refused for safety, an instrument that reports an error or stops answering,
a session file that cannot be continued: their messages say what is wrong and what to do, so the command
line prints them without a traceback (``--debug`` shows one). Every such error class of the project
derives from :class:`UserFacingError` besides its usual base (``ValueError``, ``RuntimeError``...).
"""


class UserFacingError(Exception):
    """An expected failure whose message names the thing at fault and what to do."""


class UserFacingWarning(UserWarning):
    """Something a lab user should know that does not stop the command; the message says what and what to do."""

"""The live view: a web page that follows a session while it is being written (``hil watch``, ``--live``).

- :mod:`hil.live.feed`: what the page shows, read from the session file (committed units only);
- :mod:`hil.live.page_server`: the aiohttp server of the page, its assets and its JSON state;
- :mod:`hil.live.launch`: ``--live`` for the measuring commands (a ``hil watch`` child process beside the run);
- ``static/``: the page, and plotly.js (basic bundle 4.1.1, MIT licence, from the npm package
  ``plotly.js-basic-dist-min``) so nothing is fetched from the internet.
"""

"""Which packages the distribution holds (the rest of the metadata is in pyproject.toml).

The shipped ``configs/`` (station, chip, protocol and sweep files) and ``data/`` (a recorded session) install as
the resources ``hil.configs`` and ``hil.data``, found with ``importlib.resources``
(``instruments/config_files.py``); the live view's page and plotly.js as ``hil.live.static``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["hil*", "instruments*", "protocols*", "sim_backend*", "benchmarks*"]),
              "hil.configs", "hil.configs.protocols", "hil.configs.sweeps", "hil.data", "hil.live.static"],
    package_dir={"hil.configs": "configs", "hil.data": "data"},
    package_data={"hil.configs": ["*.yaml"], "hil.configs.protocols": ["*.yaml"], "hil.configs.sweeps": ["*.yaml"],
                  "hil.data": ["*.h5", "*.md"],
                  "hil.live.static": ["*.html", "*.js", "*.css", "*.txt"]},
)

"""Real Debian 12 hosts booted on this machine (systemd-nspawn), for the deploy tests and
``flaskprod deploy --rehearse``. Recipe and measurements: ``docs/lab.md``."""

from flaskprod.lab.host import Lab, LabHost

__all__ = ["Lab", "LabHost"]

"""Whether a host name or address is this machine's loopback (pure): the worker token may go over
plain http only there, and a coordinator there gets no tunnel by default."""

from __future__ import annotations

import ipaddress


def loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

"""Network names: which hosts are this machine (loopback), for the https guard and the emulator."""

from __future__ import annotations

from ipaddress import ip_address


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

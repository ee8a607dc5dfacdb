"""Network addresses: which ones only this machine can reach."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``host`` (an IP literal or ``localhost``) reaches this machine only. An IPv4-mapped IPv6 address counts as
    the IPv4 address it maps: ``::ffff:127.0.0.1`` was warned about as "not a loopback address" (probe 28)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback

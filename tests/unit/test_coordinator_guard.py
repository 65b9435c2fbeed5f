"""Where the reference coordinator's proxy may go (issue 21, item 8), with a scripted resolver:
private and own addresses refused unless allowed, every resolved address checked, the address
pinned for the connection, a rebinding name caught at connect time."""

from __future__ import annotations

import pytest

from rma_coordinator.api.guard import Guard, Refused, Resolver

PUBLIC = "93.184.216.34"


def resolver(table: dict[str, list[str]]) -> Resolver:
    return lambda host, port: table[host]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "0.0.0.0",
     "100.64.0.1", "224.0.0.1", "::1", "fe80::1", "::ffff:127.0.0.1", "fd00::1"],
)  # fmt: skip
def test_non_public_addresses_are_refused_unless_allowed(address: str) -> None:
    guard = Guard(resolver=resolver({"w": [address]}))
    with pytest.raises(Refused):
        guard.target("http://w:8080/")
    assert Guard(allow_private=True, resolver=resolver({"w": [address]})).target("http://w:80")


def test_a_name_with_one_bad_address_is_refused_whole_and_schemes_are_checked() -> None:
    guard = Guard(resolver=resolver({"w": [PUBLIC, "127.0.0.1"], "ok": [PUBLIC]}))
    with pytest.raises(Refused):
        guard.target("http://w/")
    for url in ("ftp://ok/", "http://user:pw@ok/", "file:///etc/passwd", "http://ok:99999/"):
        with pytest.raises(Refused):
            guard.target(url)


def test_the_address_is_pinned_and_the_host_kept_for_host_and_sni() -> None:
    target = Guard(resolver=resolver({"svc.example": [PUBLIC]})).target(
        "https://svc.example:8443/base/"
    )
    assert target.pinned("a%3Fb") == f"https://{PUBLIC}:8443/base/a%3Fb"
    assert target.host_header == "svc.example:8443" and target.host == "svc.example"


def test_the_coordinators_own_address_is_refused_even_when_private_is_allowed() -> None:
    guard = Guard(True, frozenset({("127.0.0.1", 8080)}), resolver({"me": ["127.0.0.2"]}))
    with pytest.raises(Refused, match="own address"):
        guard.target("http://me:8080/")
    assert guard.target("http://me:9000/")  # another port of this machine: a LAN pool's worker


def test_a_name_rebound_after_it_was_announced_is_caught_at_connect_time() -> None:
    table = {"rebind.example": [PUBLIC]}
    guard = Guard(resolver=resolver(table))
    assert guard.announced("http://rebind.example/")
    table["rebind.example"] = ["127.0.0.1"]
    assert guard.announced("http://rebind.example/")  # remembered for a minute
    with pytest.raises(Refused):
        guard.target("http://rebind.example/")  # but never connected to

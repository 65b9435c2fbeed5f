"""`--isolate-lan`: iptables rules that keep the agent's containers off this machine and the LAN
(opt-in: Docker and Kubernetes leave this to the owner too; it needs root and iptables).

Two chains of the agent's own, named after the instance, are jumped to from Docker's `DOCKER-USER`
chain (traffic the machine forwards) and from `INPUT` (traffic to the machine itself):
- forwarded from the agent's subnet: replies and traffic within the subnet pass; to private
  ranges (10/8, 172.16/12, 192.168/16, 100.64/10) and link-local (169.254/16) it is dropped;
  the internet stays reachable.
- from the agent's bridge to the machine: replies pass, everything else is dropped; the same from
  each internal network a service shares with its tunnel (`guard_bridge`).
Applied when the network is created or adopted, removed at teardown and by `cleanup`; applying
again first removes what an earlier run left.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

from controller.core.errors import PermanentError

PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
REPLIES = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"]


def chains(instance: str) -> tuple[str, str]:
    """(forward chain, input chain): iptables names are at most 28 characters."""
    tag = hashlib.sha256(instance.encode()).hexdigest()[:10]
    return f"RMA-{tag}-FWD", f"RMA-{tag}-IN"


def _iptables(*args: str, check: bool = True) -> bool:
    binary = shutil.which("iptables")
    if binary is None:
        raise PermanentError("--isolate-lan needs iptables, which is not installed")
    done = subprocess.run(
        [binary, "-w", "10", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if check and done.returncode != 0:
        raise PermanentError(f"iptables {' '.join(args)} failed: {done.stderr.strip()}")
    return done.returncode == 0


def isolate(instance: str, subnets: list[str], bridge: str) -> None:
    """Install the rules for the agent's network (its subnets, its bridge interface)."""
    remove(instance)
    fwd, inp = chains(instance)
    _iptables("-N", fwd)
    _iptables("-N", inp)
    _iptables("-A", fwd, *REPLIES, "-j", "RETURN")
    for subnet in subnets:
        _iptables("-A", fwd, "-d", subnet, "-j", "RETURN")
    for block in PRIVATE:
        _iptables("-A", fwd, "-d", block, "-j", "DROP")
    _iptables("-A", inp, *REPLIES, "-j", "RETURN")
    _iptables("-A", inp, "-j", "DROP")
    for subnet in subnets:
        _iptables("-I", "DOCKER-USER", "-s", subnet, "-j", fwd)
    _iptables("-I", "INPUT", "-i", bridge, "-j", inp)


def guard_bridge(instance: str, bridge: str) -> None:
    """Traffic to the machine from one more bridge of the agent's (a service's internal network
    with its tunnel, whose gateway address is the machine's too) goes the same way: dropped.
    The chains exist: `isolate` ran for the services' network first."""
    _, inp = chains(instance)
    _iptables("-I", "INPUT", "-i", bridge, "-j", inp)


def remove(instance: str) -> None:
    """Remove the jumps and chains of `instance` (nothing to remove is fine)."""
    if shutil.which("iptables") is None:
        return
    fwd, inp = chains(instance)
    for parent, chain in (("DOCKER-USER", fwd), ("INPUT", inp)):
        for rule in _rules(parent):
            if rule.endswith(f"-j {chain}"):
                _iptables("-D", parent, *rule.split()[2:], check=False)
        _iptables("-F", chain, check=False)
        _iptables("-X", chain, check=False)


def _rules(chain: str) -> list[str]:
    binary = shutil.which("iptables")
    if binary is None:
        return []
    done = subprocess.run(
        [binary, "-w", "10", "-S", chain], capture_output=True, text=True, timeout=30, check=False
    )
    return [line for line in done.stdout.splitlines() if line.startswith("-A ")]

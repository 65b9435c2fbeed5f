"""The agent's own tunnels (ingress `tunnel`): one per HTTP service, never a coordinator's to name
or change, and the URL each one prints in its log — read once per tunnel container, again when
the tunnel is recreated."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.contract.api import heartbeat_fields
from controller.contract.schema import parse_specs
from controller.contract.services import (
    announce,
    not_reachable,
    serving,
    through_tunnels,
    unreachable,
)
from controller.core.errors import TransientError
from controller.core.models import ActualContainer, DesiredState
from controller.core.status import AgentStatus, ContainerStatus
from controller.core.tunnels import OWN_NAME, TUNNEL_FOR, tunnel_name, with_tunnels
from controller.engine.tunnels import TunnelURLs

IMAGE = "cloudflare/cloudflared:2024.10.1"
WEB = {"name": "web", "image": "i:1", "ports": [{"container": 8080, "host": 18080}], "http": True}
DB = {"name": "db", "image": "postgres:16", "port": 5432}
PATTERN = r"https://[-a-z0-9]+\.trycloudflare\.com"


def desired(*entries: dict[str, object]) -> DesiredState:
    return DesiredState(tuple(parse_specs(list(entries))[0]))


def test_each_http_service_gets_one_tunnel_to_its_container_port() -> None:
    got = with_tunnels(desired(WEB, DB), IMAGE)
    tunnels = [s for s in got.specs if s.name.startswith("rma-tunnel-")]
    assert [t.name for t in tunnels] == ["rma-tunnel-web"]  # db is TCP only
    tunnel = tunnels[0]
    assert tunnel.image == IMAGE and tunnel.labels_dict == {TUNNEL_FOR: "web"}
    # never the service's name (a coordinator's string): the alias on their own network
    assert tunnel.command == (
        "tunnel",
        "--no-autoupdate",
        "--metrics",
        "0.0.0.0:2000",
        "--url",
        "http://rma-origin:8080",
    )
    assert tunnel.ports == () and tunnel.gpu == 0 and tunnel.volumes == ()


def test_a_coordinator_cannot_name_or_shape_a_tunnel() -> None:
    fake: dict[str, object] = {"name": "rma-tunnel-web", "image": "evil:1", "command": ["sh"]}
    got = with_tunnels(desired(WEB, fake), IMAGE)
    assert [(r.name, r.message) for r in got.refused] == [("rma-tunnel-web", OWN_NAME)]
    assert next(s for s in got.specs if s.name == "rma-tunnel-web").image == IMAGE


def test_long_names_stay_valid_and_distinct() -> None:
    one, two = "a" * 120 + "-one", "a" * 120 + "-two"
    assert len(tunnel_name(one)) == 128 and tunnel_name(one) != tunnel_name(two)


@dataclass
class Logs:
    containers: list[ActualContainer] = field(default_factory=list)
    text: dict[str, str] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    down: bool = False

    def list_managed(self) -> list[ActualContainer]:
        if self.down:
            raise TransientError("engine busy")
        return self.containers

    def logs(self, container_id: str, tail: int = 200) -> str:
        self.reads.append(container_id)
        return self.text.get(container_id, "")


def running(cid: str, name: str) -> ActualContainer:
    return ActualContainer(cid, name, "running")


def test_the_url_is_the_one_the_tunnel_printed_last() -> None:
    logs = Logs([running("s1", "web"), running("t1", "rma-tunnel-web")])
    urls = TunnelURLs(logs, PATTERN)
    assert urls.snapshot() == {}  # nothing printed yet
    logs.text["t1"] = "INF |  https://calm-river-1.trycloudflare.com  |\nINF other"
    assert urls.snapshot() == {"rma-tunnel-web": "https://calm-river-1.trycloudflare.com"}
    logs.text["t1"] += (
        "\nINF restarted: https://new-1.trycloudflare.com https://x.trycloudflare.com"
    )
    # The last line with a URL; on it, the first URL.
    assert urls.snapshot() == {"rma-tunnel-web": "https://new-1.trycloudflare.com"}
    logs.containers[1] = running("t2", "rma-tunnel-web")  # killed, recreated: a new URL
    logs.text["t2"] = "https://bold-sea-2.trycloudflare.com"
    assert urls.snapshot() == {"rma-tunnel-web": "https://bold-sea-2.trycloudflare.com"}
    assert "s1" not in logs.reads  # only the tunnels' logs are read


def test_no_url_while_the_tunnel_does_not_run_or_the_engine_does_not_answer() -> None:
    stopped = ActualContainer("t1", "rma-tunnel-web", "exited")
    logs = Logs([stopped], {"t1": "https://a.trycloudflare.com"})
    assert TunnelURLs(logs, PATTERN).snapshot() == {}
    logs.containers, logs.down = [running("t1", "rma-tunnel-web")], True
    assert TunnelURLs(logs, PATTERN).snapshot() == {}


def test_only_http_services_are_announced_through_their_tunnel() -> None:
    specs = desired(WEB, DB).specs
    found = {"rma-tunnel-web": "https://a.trycloudflare.com", "rma-tunnel-db": "x"}
    ann = announce(specs, through_tunnels(found))
    assert [(s.name, s.service_url) for s in ann.services] == [
        ("web", "https://a.trycloudflare.com")
    ]
    assert ann.tunnel_url == "https://a.trycloudflare.com"


def row(name: str, state: str, health: str = "") -> ContainerStatus:
    return ContainerStatus(name, state, "i", health=health)


def test_a_service_is_announced_once_running_kept_while_recreated_withdrawn_when_down() -> None:
    before: frozenset[str] = frozenset()
    now = serving(AgentStatus((row("web", "pulling"),)), before)
    assert now == frozenset()  # never ran yet: not announced
    now = serving(AgentStatus((row("web", "running", "starting"),)), now)
    assert now == frozenset()  # its health check has not passed yet
    now = serving(AgentStatus((row("web", "running", "healthy"),)), now)
    assert now == {"web"}
    for passing in ("missing", "created", "pulling"):  # recreated for a new worker id
        assert serving(AgentStatus((row("web", passing),)), now) == {"web"}
    for down in ("exited", "backoff", "failed"):
        assert serving(AgentStatus((row("web", down),)), now) == frozenset()
    assert serving(AgentStatus((row("web", "running", "unhealthy"),)), now) == frozenset()
    assert serving(AgentStatus(()), now) == frozenset()  # left the assignment


def test_what_the_pool_cannot_reach_is_said_with_why() -> None:
    web = ContainerStatus("web", "running", "i", service="web", http=True)
    db = ContainerStatus("db", "running", "i", service="postgres")
    tunnel = ContainerStatus("rma-tunnel-web", "running", "i", service="rma-tunnel-web")
    status = AgentStatus((web, db, tunnel))
    specs = desired(WEB, DB).specs
    ann = announce(specs, through_tunnels({"rma-tunnel-web": "https://a.trycloudflare.com"}))
    assert not_reachable(status, ann, "tunnel") == {
        "postgres": "TCP only: a quick tunnel carries HTTP (announced with --ingress url)"
    }
    assert set(not_reachable(status, announce(specs, unreachable), "none")) == {"web", "postgres"}
    body = heartbeat_fields(status, 0.1, 1 << 30, announced=ann, unreachable={"postgres": "x"})
    assert body["not_reachable"] == {"postgres": "x"}


def test_a_tunnel_waits_until_its_service_has_run() -> None:
    """Issue 22, item 3: a tunnel ran for a service whose image could not even be pulled."""
    from controller.core.models import ActualContainer  # noqa: PLC0415
    from controller.core.planner import Create, plan  # noqa: PLC0415
    from controller.core.tunnels import defer_unstarted  # noqa: PLC0415

    full = with_tunnels(desired(WEB, DB), IMAGE)
    waiting = defer_unstarted(full, frozenset())
    assert waiting.deferred == {"rma-tunnel-web"}
    assert [a.spec.name for a in plan(waiting, []) if isinstance(a, Create)] == ["db", "web"]
    tunnel = waiting.by_name()["rma-tunnel-web"]
    running = ActualContainer("t1", "rma-tunnel-web", "running", tunnel.spec_hash())
    kept = plan(waiting, [running])  # one already there (an agent restart) is left alone
    assert not any(a.target == "rma-tunnel-web" for a in kept)
    ran = defer_unstarted(full, frozenset({"web"}))
    assert "rma-tunnel-web" in {a.spec.name for a in plan(ran, []) if isinstance(a, Create)}

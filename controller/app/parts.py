"""The composition root's engine side: the reconciler and its named parts (the source, the shape
and hold stages, the gates, the after-pass listeners: engine/hooks.py), the puller, the executor,
the admission rules and the collection of unused images, volumes and networks. `app/__init__.py`
wires it with the membership and the owner; nothing outside `app` imports it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import structlog

from controller.app.containment import (
    containment_of,
    memory_budget,
    tunnels_of,
    tunnels_wait,
    watch_disks,
)
from controller.clients.disk import docker_disk, tree_size
from controller.clients.docker_runtime import DockerRuntime
from controller.clients.manifest import ManifestSource
from controller.clients.registry import image_size
from controller.clients.store import StateStore
from controller.contract.services import (
    Reach,
    at_host,
    from_template,
    through_tunnels,
    unreachable,
)
from controller.core.admission import Admission
from controller.core.caches import default_cap
from controller.core.clock import SYSTEM, Clock
from controller.core.containment import Containment, network_name
from controller.core.errors import AgentError, ConfigError
from controller.core.gpu_fit import GpuPlacer, GpuRoom, Placement
from controller.core.gpu_prereq import (
    TOOLKIT_FIX,
    amd_refusal,
    cuda_refusal,
    on_amd,
    refuse_unrunnable,
    required_cuda,
    spec_refusal,
)
from controller.core.limits import Limits, memory_bytes
from controller.core.machine import GpuInfo
from controller.core.models import ActualContainer, ContainerSpec, DesiredState
from controller.core.observe import NullObserver, Observer, PullProgress
from controller.core.placeholders import fill
from controller.core.policy import ImagePolicy
from controller.engine.caches import CacheReaders, ModelCaches
from controller.engine.crashloop import CrashLoop
from controller.engine.doorbell import Doorbell
from controller.engine.drain import Drain
from controller.engine.executor import Executor
from controller.engine.hooks import AfterPass, DesiredSource, Hooks, Listener, Stage
from controller.engine.imagegc import PulledImages, collect, floor_error
from controller.engine.images import ImagePuller, PullGuards, PullReport
from controller.engine.loop import Reconciler
from controller.engine.readiness import ReadinessProber
from controller.engine.tunnels import TunnelURLs
from controller.engine.volumes import DAY, VolumeKeeper
from controller.settings import Settings, port_bounds

if TYPE_CHECKING:
    from controller.ops.metrics import Metrics

log = structlog.get_logger(__name__)
CACHE_WALK = 10.0  # seconds each cache volume is walked at most


def limits_from(settings: Settings) -> Limits:
    try:
        return Limits.from_settings(settings.max_cpus, settings.max_memory, settings.gpus)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@dataclass(frozen=True)
class Wiring:
    """What every part is connected through: the stop event, the loop's doorbell, metrics
    (None when the endpoint that serves them is off: then prometheus_client is never loaded),
    the contributor's limits (applied to the specs and to what is offered), and `withdrawn`:
    set when shutting down, the services' URLs are no longer announced (draining)."""

    stop: threading.Event
    doorbell: Doorbell
    metrics: Metrics | None
    progress_sink: Callable[[PullProgress], None] | None
    limits: Limits
    withdrawn: threading.Event = field(default_factory=threading.Event)
    drain: Drain = field(default_factory=lambda: Drain(0))  # before a service is stopped
    after_pass: list[AfterPass] = field(default_factory=list)  # the reconciler's listeners

    @property
    def observer(self) -> Observer:
        return self.metrics if self.metrics is not None else NullObserver()


def image_policy(settings: Settings) -> ImagePolicy:
    return ImagePolicy.from_setting(settings.allowed_registries, settings.require_digest)


def gpu_machine(limits: Limits) -> bool:
    """Whether this machine's own hardware, as lent, qualifies for tier 1 (the GPU tier)."""
    from controller.clients.hardware import detect  # noqa: PLC0415 (pynvml: coordinator only)
    from controller.contract.capabilities import qualifying_tier  # noqa: PLC0415

    return qualifying_tier(limits.offered(detect())) == 1


def source_of(settings: Settings, limits: Limits, clock: Clock = SYSTEM) -> DesiredSource:
    if settings.manifest is not None:  # the owner's own file: their choice, not a coordinator's
        return ManifestSource(
            settings.manifest, publish_address=settings.publish_address, clock=clock
        )
    from controller.clients.catalog import load_catalog  # noqa: PLC0415 (coordinator only)
    from controller.membership.source import AssignmentSource  # noqa: PLC0415

    admission = Admission(
        images=image_policy(settings),
        port_range=port_bounds(settings.port_range),
        max_containers=settings.max_containers,
        gpu_machine=gpu_machine(limits),
        tunnels=settings.ingress_mode == "tunnel",
    )
    catalog = replace(load_catalog(settings.catalog), run_placeholders=settings.run_placeholders)
    return AssignmentSource(settings.publish_address, admission, catalog)


def secret_lookup(store: StateStore) -> Callable[[str], str]:
    """`${secret:NAME}`: RMA_SECRET_<NAME> from the agent's environment when the owner set one
    (credentials the owner chose), else the one this worker generated and keeps."""

    def lookup(name: str) -> str:
        return os.environ.get("RMA_SECRET_" + name.upper().replace("-", "_")) or store.secret(name)

    return lookup


def reach_of(settings: Settings, runtime: DockerRuntime) -> Callable[[], Reach]:
    """How the pool reaches a service now, by the ingress mode: the tunnels' URLs as their logs
    say, the owner's address, or not at all."""
    mode = settings.ingress_mode
    if mode == "tunnel":
        urls = TunnelURLs(runtime, settings.tunnel_url_pattern)
        return lambda: through_tunnels(urls.snapshot())
    static: Reach = unreachable
    if mode == "url":
        template = settings.advertise_url
        static = from_template(template) if template else at_host(settings.advertise_ip or "")
    return lambda: static


def _trusted(
    settings: Settings, runtime: DockerRuntime, pulled: PulledImages
) -> Callable[[str], bool]:
    """Which local images a coordinator's spec may use without a pull (see engine/images.py)."""
    if settings.manifest is not None or settings.allow_local_images:
        return lambda image: True
    policy = image_policy(settings)

    def trusted(image: str) -> bool:
        return pulled.has(image) or policy.trusts_digests(image, runtime.repo_digests(image))

    return trusted


def _collection(
    settings: Settings, runtime: DockerRuntime, pulled: PulledImages, keeper: VolumeKeeper
) -> Listener:
    """After a pass: images past the disk's high mark, unused volumes past their retention, and
    the networks no desired container needs any more."""
    disk = docker_disk(runtime.data_root)
    networks: list[frozenset[str]] = []  # the set kept last time: pruned only when it changes

    def collect_unused(desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        images = {s.image for s in desired.specs} | {c.image for c in actual}
        high, low = settings.image_gc_high, settings.image_gc_low
        collect(pulled, runtime.remove_image, disk, images, high=high, low=low)
        keeper.sweep({v.name for s in desired.specs for v in s.volumes})
        keep = frozenset(
            {s.network for s in desired.specs} | {n for s in desired.specs for n, _ in s.joins}
        )
        if networks != [keep]:
            runtime.owned.prune_networks(keep | {network_name(settings.instance)})
            networks[:] = [keep]

    return Listener("collection", collect_unused)


def loop_of(
    settings: Settings,
    runtime: DockerRuntime,
    source: DesiredSource,
    wiring: Wiring,
    holds: tuple[Stage, ...],
    facts: GpuFacts,
) -> tuple[ImagePuller, Reconciler, VolumeKeeper, ModelCaches]:
    """The puller, executor, reconciler (`holds`: the model caches, the GPU placement and the
    owner's conditions, then the tunnels' wait, each pass), volume keeper and model caches.
    `wiring.after_pass` is the reconciler's listener list."""
    stop, doorbell = wiring.stop, wiring.doorbell
    store = StateStore(settings.state_dir, settings.instance)
    pulled = PulledImages(store)
    keeper = VolumeKeeper(runtime.owned, store, retention=settings.volume_retention * DAY)
    caches = _caches(settings, runtime, wiring)
    puller = _puller(
        settings, runtime, wiring, pulled, lambda: len(loop.status().containers), caches.growth
    )
    executor = _executor(settings, runtime, puller, stop, facts)
    shape, contain = _shape(settings, runtime, wiring.limits, store)
    prober = _prober(settings, runtime, wiring)
    wiring.after_pass[:0] = [
        Listener("readiness", lambda desired, actual: prober.track(desired.specs, actual)),
        _collection(settings, runtime, pulled, keeper),
        Listener("model caches", caches.after_pass),
    ]
    watch_disks(settings, runtime, wiring.after_pass, doorbell)
    hooks = Hooks(
        shape=shape,
        holds=(
            Stage("model caches", caches.stage),
            *holds,
            tunnels_wait(lambda: loop.status(), prober.answered_http),  # noqa: PLW0108 (loop: made below)
        ),
        gates=(wiring.drain, CrashLoop(clock=doorbell.clock.now)),
        after=wiring.after_pass,
        dues=(puller,),
        overlay=prober,
        observer=wiring.observer,
    )
    loop = Reconciler(
        source,
        runtime,
        executor,
        hooks,
        doorbell=doorbell,
        resync=settings.resync_interval,
        network=contain.network,
    )
    return puller, loop, keeper, caches


@dataclass
class GpuFacts:
    """The lent GPUs and what the engine can give a container, read once, on the first pass
    that has a GPU service (detection loads NVML; `docker info` says the runtimes)."""

    limits: Limits
    engine: DockerRuntime
    _gpus: list[tuple[GpuInfo, ...]] = field(default_factory=list)
    _toolkit: list[bool] = field(default_factory=list)
    _images: dict[str, str | None] = field(default_factory=dict)  # image -> why not (checked)
    _amd: list[tuple[dict[str, tuple[str, ...]], tuple[str, ...]]] = field(default_factory=list)

    def gpus(self) -> tuple[GpuInfo, ...]:
        if not self._gpus:
            from controller.clients.hardware import detect  # noqa: PLC0415 (pynvml: GPU only)

            self._gpus.append(self.limits.offered(detect()).gpus)
        return self._gpus[0]

    @property
    def nvidia(self) -> bool:
        return any(g.driver == "nvidia" for g in self.gpus())

    @property
    def amd(self) -> bool:
        return any(g.driver == "rocm" for g in self.gpus())

    def amd_mapping(self) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """Each lent AMD GPU's render nodes (from sysfs) and the host's video/render GIDs."""
        from controller.clients.rocm import host_groups, render_nodes  # noqa: PLC0415

        if not self._amd:
            lent = [g for g in self.gpus() if g.driver == "rocm"]
            self._amd.append(({str(g.index): render_nodes(g.index) for g in lent}, host_groups()))
        return self._amd[0]

    def toolkit(self) -> bool:
        """Docker can give a container an NVIDIA GPU (True when unknown: the engine says)."""
        if not self._toolkit:
            from controller.clients.hardware import gpu_runtime  # noqa: PLC0415

            try:
                runtimes: frozenset[str] | None = self.engine.runtimes()
            except AgentError as exc:
                log.warning("docker_runtimes_unread", error=str(exc))
                runtimes = None
            found = gpu_runtime(self.gpus(), runtimes, local=self.engine.local)
            self._toolkit.append(runtimes is None or found == "nvidia")
            if not self._toolkit[0]:
                log.error("gpu_runtime_missing", fix=TOOLKIT_FIX)
        return self._toolkit[0]

    def cuda(self) -> tuple[str, str]:
        """The CUDA version the NVIDIA driver supports and the driver's version ("": unread)."""
        nvidia = [g for g in self.gpus() if g.driver == "nvidia"]
        return (nvidia[0].cuda_version, nvidia[0].driver_version) if nvidia else ("", "")

    def before_pull(self, spec: ContainerSpec) -> str | None:
        """Why a GPU spec cannot run here: on AMD GPUs no ROCm image; on NVIDIA ones no toolkit
        or a `cuda_min` the driver lacks."""
        if self.amd:
            return amd_refusal(spec)
        if not self.nvidia:
            return None
        cuda, driver = self.cuda()
        return spec_refusal(spec, toolkit=self.toolkit(), driver_cuda=cuda, driver_version=driver)

    def before_create(self, spec: ContainerSpec) -> str | None:
        """Why its image cannot run on this driver (`NVIDIA_REQUIRE_CUDA`), once pulled."""
        if not spec.gpu or not self.nvidia:
            return None
        if spec.image not in self._images:
            cuda, driver = self.cuda()
            try:
                needed = required_cuda(self.engine.image_env(spec.image))
            except AgentError as exc:  # not readable: the engine will say at create
                log.debug("image_env_unread", image=spec.image, error=str(exc))
                return None
            why = cuda_refusal(needed, cuda, driver) if needed else None
            self._images[spec.image] = why
            if why is not None:
                log.error("gpu_image_unavailable", image=spec.image, reason=why)
        return self._images[spec.image]


def gpu_placement(others: Callable[[], dict[str, int | None]], facts: GpuFacts) -> Stage:
    """Each pass: what cannot run on this machine's GPUs at all (the toolkit, the CUDA version:
    core/gpu_prereq.py) unavailable with its fix, then the GPU services placed on the lent GPUs
    where they fit (core/gpu_fit.py), with what other programs use on each as the owner's
    sensors last read it (`others`: GPU index -> bytes)."""
    kept: dict[str, Placement] = {}
    unfit: list[bool] = []  # said once

    def place(desired: DesiredState) -> DesiredState:
        if not any(s.gpu for s in desired.specs):
            return desired
        desired = refuse_unrunnable(desired, facts.before_pull)
        use = others()
        rooms = tuple(
            GpuRoom(str(g.index), g.memory_bytes, use.get(str(g.index))) for g in facts.gpus()
        )
        shaped, placed = GpuPlacer(rooms, dict(kept)).apply(desired)
        if facts.amd:
            shaped = on_amd(shaped, *facts.amd_mapping())
        if placed != kept:
            where = {n: ",".join(p.devices) for n, p in placed.items()}
            log.info("gpu_placement", placed=where)
        none_fit = not placed and any("of GPU memory" in r.message for r in shaped.refused)
        if none_fit and not unfit:
            log.warning("gpu_services_unfit", note="no GPU service fits this machine's GPUs")
            unfit.append(True)
        elif not none_fit:
            unfit.clear()
        kept.clear()
        kept.update(placed)
        return shaped

    return Stage("gpu placement", place)


def _caches(settings: Settings, runtime: DockerRuntime, wiring: Wiring) -> ModelCaches:
    """The model caches, measured where the engine keeps them (its volumes' Mountpoints, read
    when the engine is local and the agent may: root), held to --model-cache-max."""
    disk = docker_disk(runtime.data_root)
    cap = memory_bytes(settings.model_cache_max) if settings.model_cache_max else None

    def measure(name: str) -> tuple[int, bool] | None:
        path = runtime.owned.volume_path(name)
        if not runtime.local or not path or not os.access(path, os.R_OK | os.X_OK):
            return None
        return tree_size(path, CACHE_WALK)

    def existing() -> frozenset[str]:
        return frozenset(c.name for c in runtime.list_managed())

    readers = CacheReaders(
        measure, lambda: cap or default_cap(disk()[1]), existing, wiring.doorbell.ring
    )
    return ModelCaches(readers, clock=wiring.doorbell.clock.now)


def _prober(settings: Settings, runtime: DockerRuntime, wiring: Wiring) -> ReadinessProber:
    """Each service's readiness, probed on a thread of its own; one not ready in time is
    stopped (the loop starts it again, counted for the crash-loop back-off)."""

    def restart(container_id: str) -> None:
        try:
            runtime.stop(container_id, settings.stop_grace)
        except AgentError as exc:
            log.warning("restart_failed", container=container_id[:12], error=str(exc))
        wiring.doorbell.ring()

    prober = ReadinessProber(wiring.stop, restart=restart, on_change=wiring.doorbell.ring)
    prober.start()
    return prober


def _puller(
    settings: Settings,
    runtime: DockerRuntime,
    wiring: Wiring,
    pulled: PulledImages,
    containers: Callable[[], int],
    growth: Callable[[], int] = lambda: 0,
) -> ImagePuller:
    """Background pulls, each held to the disk floor with its size and those in flight."""
    disk = docker_disk(runtime.data_root)
    return ImagePuller(
        runtime,
        on_done=wiring.doorbell.ring,
        refresh_interval=settings.image_refresh_interval,
        clock=wiring.doorbell.clock.now,
        guards=PullGuards(
            floor=lambda needed: floor_error(
                disk, settings.min_free_disk, containers(), needed, growth()
            ),
            size=image_size,
            trusted=_trusted(settings, runtime, pulled),
            on_pulled=pulled.add,
        ),
        report=PullReport(wiring.observer, wiring.progress_sink),
    )


def _shape(
    settings: Settings, runtime: DockerRuntime, limits: Limits, store: StateStore
) -> tuple[tuple[Stage, ...], Containment]:
    """What every new desired state goes through before a pass: secrets filled in, the tunnels
    added, the owner's caps, then the containment (so tunnels are held to it too)."""
    contain, lookup = containment_of(settings, runtime), secret_lookup(store)
    held: list[Containment] = []  # with this instance's volumes, once the engine listed them

    def containment(desired: DesiredState) -> DesiredState:
        if not held:  # an engine error fails this pass (backed off), never a volume renamed
            existing = frozenset(v.name for v in runtime.owned.list_volumes())
            held.append(replace(contain, existing=existing))
        return held[0].apply_all(desired)

    return (
        Stage("secrets", lambda desired: fill(desired, lookup)),
        Stage("tunnels", tunnels_of(settings)),
        Stage("caps", limits.apply_all),
        Stage("containment", containment),
        Stage("memory", memory_budget(settings).apply),
    ), contain


def _executor(
    settings: Settings,
    runtime: DockerRuntime,
    puller: ImagePuller,
    stop: threading.Event,
    facts: GpuFacts,
) -> Executor:
    return Executor(
        runtime,
        puller,
        concurrency=settings.concurrency,
        stop_grace=settings.stop_grace,
        should_stop=stop.is_set,
        preflight=facts.before_create,
    )

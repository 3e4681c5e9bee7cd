"""`adanns cluster serve`: a Ray Serve application of one ingress (the service's own app, `create_app`, over a
`ShardedStore`) and one deployment per copy of each shard (`ShardCopy`).

Each copy is its own deployment (one replica) so that the ingress addresses every copy of a shard — writes
go to all of them, reads to one in turn — and Serve restarts each on its own when it dies. The copies keep
their indexes in ``DATA_DIR/shard-<s>/copy-<r>/`` on the disk of the node that runs them; with several
nodes, DATA_DIR must be on storage every node sees (or the copies pinned to nodes), or a copy restarted
elsewhere starts empty.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import manifest as manifest_io
from . import require_ray
from .shard import ShardCopy

log = logging.getLogger("adanns.cluster")
APP_NAME = "adanns"


class ClusterIngress:
    """The Serve ingress: builds the service's ASGI app (gate + FastAPI routes) on the replica."""

    def __init__(self, copies: list, settings, timeout: float):
        self.copies, self.settings, self.timeout = copies, settings, timeout

    def __serve_build_asgi_app__(self):
        from ..server.app import asgi_app
        from .partial import PartialAnswers
        from .sharded_store import Shards, ShardedStore

        shards = Shards(self.copies, self.timeout)
        return PartialAnswers(asgi_app(self.settings,
                                       open_store=lambda: ShardedStore(shards, self.settings.snapshot_every)))


def application(settings, manifest_dir: str | None = None, shards: int | None = None, replicas: int = 1,
                timeout: float = 30.0, cpus_per_copy: float = 1.0):
    """The bound Serve application. ``manifest_dir``: serve a sharded build (its index becomes each copy's
    first snapshot on first start); else ``shards`` empty shards for indexes created over REST.
    ``settings``: an adanns.server.Settings (its data_dir holds the copies' folders)."""
    require_ray()
    from ray import serve

    if manifest_dir is not None:
        m = manifest_io.read(manifest_dir)
        if shards is not None and shards != len(m.shards):
            raise ValueError(f"the manifest has {len(m.shards)} shards, --shards says {shards}")
        shards = len(m.shards)
        manifest_dir = str(Path(manifest_dir).resolve())
    if not isinstance(shards, int) or shards < 1:
        raise ValueError(f"give a manifest directory or a shard count >= 1, got shards={shards!r}")
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas!r}")
    copy_deployment = serve.deployment(
        ShardCopy, num_replicas=1, max_ongoing_requests=64, health_check_period_s=2, health_check_timeout_s=30,
        graceful_shutdown_timeout_s=20, ray_actor_options={"num_cpus": cpus_per_copy})
    copies = [[copy_deployment.options(name=f"shard-{s}-copy-{r}").bind(
                   str(Path(settings.data_dir).resolve()), s, r, manifest_dir, settings.snapshot_every)
               for r in range(replicas)] for s in range(shards)]
    ingress = serve.deployment(serve.ingress()(ClusterIngress), name="ingress", num_replicas=1,
                               max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
    return ingress.bind(copies, settings, timeout)


def serve(settings, manifest_dir: str | None = None, shards: int | None = None, replicas: int = 1,
          host: str = "127.0.0.1", port: int = 8000, address: str | None = None, timeout: float = 30.0,
          cpus_per_copy: float | None = None) -> None:
    """Starts (or updates) the application on the Ray cluster at ``address`` (None: the running one or a new
    local one) and returns once it is serving on http://host:port/. ``cpus_per_copy`` None: one CPU per shard
    copy, less when the cluster has fewer CPUs than copies (so that every copy can be placed)."""
    ray = require_ray()
    from ray import serve as ray_serve

    if manifest_dir is not None:
        manifest_io.read(manifest_dir)  # a wrong directory fails here, before Ray starts
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    if cpus_per_copy is None:
        copies = replicas * (shards or len(manifest_io.read(manifest_dir, check_files=False).shards))
        cpus_per_copy = min(1.0, 0.9 * ray.cluster_resources().get("CPU", 1) / copies)
    app = application(settings, manifest_dir, shards, replicas, timeout, cpus_per_copy)
    ray_serve.start(http_options={"host": host, "port": port})
    ray_serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)

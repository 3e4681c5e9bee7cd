"""Deploys `adanns cluster serve`'s application on the session's local Ray cluster (conftest.ray_cluster)."""

from __future__ import annotations

import time

import httpx

from _server import free_port

_PORT = []


class ClusterServer:
    """One application at a time (re-deploying replaces it); ``url`` is the Serve proxy's."""

    def __init__(self, data_dir, shards: int | None = 2, manifest=None, replicas: int = 1, api_key=None,
                 timeout: float = 20.0):
        from adanns.cluster.app import APP_NAME, application
        from adanns.server import Settings
        from ray import serve

        if not _PORT:
            _PORT.append(free_port())
            serve.start(http_options={"host": "127.0.0.1", "port": _PORT[0]})
        self.url = f"http://127.0.0.1:{_PORT[0]}"
        self.api_key = api_key
        settings = Settings(data_dir=data_dir, api_key=api_key)
        serve.delete(APP_NAME)
        app = application(settings, manifest_dir=None if manifest is None else str(manifest),
                          shards=None if manifest is not None else shards, replicas=replicas, timeout=timeout,
                          cpus_per_copy=0)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster application did not answer /healthz within 60 s")

    def client(self, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kw)


def replica_actor(deployment: str):
    """The Ray actor of the (only) replica of a deployment of the adanns application."""
    import ray
    from ray.util import list_named_actors

    names = [a["name"] for a in list_named_actors(all_namespaces=True)
             if f"#{deployment}#" in a["name"] and a["name"].startswith("SERVE_REPLICA::adanns")]
    if len(names) != 1:
        raise RuntimeError(f"expected one replica of {deployment}, found {names}")
    return ray.get_actor(names[0], namespace="serve")

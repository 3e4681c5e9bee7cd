"""adanns on a Ray cluster: a sharded build with Ray Data (`build`) and the REST service scattered over
shards with Ray Serve (`serve`). Needs the ``ray`` extra: ``pip install 'adanns[ray]'``.

Only this package imports Ray, and only when a function that needs it runs, so ``import adanns`` and
``adanns.cluster.manifest`` work without it.
"""

from __future__ import annotations

EXTRA_MESSAGE = "adanns cluster needs the 'ray' extra: pip install 'adanns[ray]' (Ray Data, Ray Serve, pyarrow)"


def require_ray():
    """The ray module, or RuntimeError naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
        import ray.serve  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"{EXTRA_MESSAGE} ({e})") from None
    return ray


def build(*args, **kwargs):
    """See `adanns.cluster.builder.build`."""
    from .builder import build as _build

    return _build(*args, **kwargs)


def serve(*args, **kwargs):
    """See `adanns.cluster.app.serve`."""
    from .app import serve as _serve

    return _serve(*args, **kwargs)

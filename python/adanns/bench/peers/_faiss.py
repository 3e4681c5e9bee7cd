"""What the faiss peers share: the import check, thread control and the distance counter."""

from __future__ import annotations


def missing():
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "faiss is not installed (pip install faiss-cpu)"
    return None


def ivf_scanned(run):
    """Calls run() and returns (its result, rows the IVF scan compared: faiss counts them in ndis)."""
    import faiss

    faiss.cvar.indexIVF_stats.reset()
    out = run()
    return out, faiss.cvar.indexIVF_stats.ndis


def set_threads(threads: int) -> None:
    import faiss

    faiss.omp_set_num_threads(threads)

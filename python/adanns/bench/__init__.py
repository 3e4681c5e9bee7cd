"""`adanns bench`: adanns and the systems a user would otherwise use, on the user's own embeddings, in one
process: recall, MFLOPs/query, QPS, latency, build time, bytes; results.json, a Markdown table, PNG plots.

Families are pluggable: ``families/`` (adanns index kinds) and ``peers/`` (faiss, hnswlib) each hold one
module per family exposing ``NAME``, ``PEER``, ``missing()`` and ``variants(ctx)`` (see ``family.py``).
"""

"""The adanns HTTP service: FastAPI app over a durable data directory (see app.create_app)."""

from .app import asgi_app, create_app
from .config import Settings

__all__ = ["Settings", "asgi_app", "create_app"]

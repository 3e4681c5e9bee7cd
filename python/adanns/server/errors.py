"""Errors the service answers with a JSON 4xx; every layer raises these instead of returning codes."""

from __future__ import annotations


class ApiError(Exception):
    status = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class BodyTooLarge(ApiError):
    status = 413


class Invalid(ApiError):
    status = 422


class UnsupportedMediaType(ApiError):
    status = 415


class Unauthorized(ApiError):
    status = 401


class Timeout(ApiError):
    status = 408


class Unavailable(ApiError):
    """The index is in a failed or read-only state (the detail says why), or the storage refused a write."""
    status = 503


class StorageFull(ApiError):
    """Disk full, quota or file-size limit: nothing was written, retry once there is room."""
    status = 507


def storage_error(what: str, error: OSError) -> ApiError:
    """The API error for an OSError of the storage: 507 when it is out of room, 503 otherwise."""
    import errno
    full = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return (StorageFull if full else Unavailable)(f"{what}: {error.strerror or error} (nothing was written)")


def describe_validation(errors: list) -> str:
    """pydantic's error list as one readable line: ``body.vectors.0.3: Input should be a valid number``."""
    parts = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    return "; ".join(parts[:10]) + (f"; ... ({len(parts) - 10} more)" if len(parts) > 10 else "")

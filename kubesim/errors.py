"""API errors as real ``Status`` objects."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the API server answers with a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, plural: str, causes: list[dict[str, str]] | None = None
             ) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if causes:
        details["causes"] = causes
    return details


def _resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_resource(group, plural)} "{name}" not found',
                    _details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_resource(group, plural)} "{name}" already exists',
                    _details(name, group, plural))


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_resource(group, plural)} "{name}": {why}',
                    _details(name, group, plural))


def invalid(group: str, kind: str, plural: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """``causes``: (reason like FieldValueInvalid, field path, message)."""
    parts = [f"{field}: {msg}" for _, field, msg in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    message = f'{kind}.{group} "{name}" is invalid: {joined}' if group else f'{kind} "{name}" is invalid: {joined}'

    cause_list = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    details = _details(name, group, plural, cause_list)
    details["kind"] = kind
    return ApiError(422, "Invalid", message, details)


def forbidden(user: str, verb: str, group: str, plural: str, namespace: str | None, name: str | None) -> ApiError:
    """``plural`` may name a subresource (``deployments/status``); the message names the resource like the real
    authorizer: ``deployments.apps "web" is forbidden: User "u" cannot patch resource "deployments" ...``."""
    base = plural.split("/", 1)[0]
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    named = f' "{name}"' if name else ""
    msg = (f'{_resource(group, base)}{named} is forbidden: User "{user}" cannot {verb} resource "{plural}" '
           f'in API group "{group}" {scope}')
    return ApiError(403, "Forbidden", msg, _details(name, group, base))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                 f"accepted media types include: application/json-patch+json, "
                                                 f"application/merge-patch+json, application/apply-patch+yaml, "
                                                 f"application/strategic-merge-patch+json (got {content_type})")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)

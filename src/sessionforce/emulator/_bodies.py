"""Reading request bodies safely: bounded size, bounded JSON nesting, JSON-only constants, media type.

Every route reads its body through here, so a hostile body (a gigabyte, ``[[[[...`` a hundred thousand
deep, ``NaN``) gets one clear 4xx instead of a ``RecursionError`` on stderr or memory without bound.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from sessionforce.emulator._errors import ApiError


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or ApiError 413 once it passes ``limit`` bytes (checked while reading, so a
    body without ``Content-Length`` cannot grow without bound either)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, f"Request body too large: {size} bytes or more; the limit is {limit} bytes.")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_json(body: bytes, max_depth: int, *, constants: bool = False) -> Any:
    """``body`` parsed as JSON, or ValueError saying why not (syntax, ``NaN``/``Infinity``, nesting).

    Nesting is checked after parsing, iteratively; a body nested past the interpreter's recursion
    limit fails inside the parser with RecursionError, reported the same way. With ``constants``,
    ``NaN``/``Infinity`` parse as floats, for a caller that checks its numbers and names the field.
    """
    try:
        data = json.loads(body, parse_constant=None if constants else _reject_constant)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8 text") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            raise ValueError(f"JSON nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return data


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value names JSON (``application/json``, with parameters, or ``+json``)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_json_media_type(request: Request) -> None:
    """ApiError 500 "Unsupported Media Type" unless the body is declared JSON, as the real service answers
    (Salesforce's Agent API troubleshooting page lists exactly this 500)."""
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        raise ApiError(500, f"Unsupported Media Type: Content-Type {content_type or '(none)'!r} is not supported; "
                       "send 'Content-Type: application/json'.", error="HttpMediaTypeNotSupportedException")

"""Tests build about 1,500 applications from the same module-level routers. FastAPI
(0.165) builds each included route's handler (its dependencies, parameter adapters,
response model) lazily on an application's first request, per application: about 0.3 s
of CPU each, minutes over the suite. `share()` lets every application of the test
process reuse the handlers built for the same route included the same way.

What differs between two applications is their state (database, settings, limiters),
reached through `request.app` at request time, never through a handler. The one link a
handler keeps to its application is the provider of `dependency_overrides`, which no
test uses (`test_no_test_overrides_dependencies` keeps it so). Should FastAPI's
internals change shape, nothing is shared and the tests run as before, only slower.
"""

from __future__ import annotations

from typing import Any

from fastapi import routing


def share() -> bool:
    """Share built route handlers between the process's applications; whether it could."""
    context_class: Any = getattr(routing, "_EffectiveRouteContext", None)
    build = getattr(context_class, "from_api_route", None)
    if build is None or getattr(build, "shared", False):
        return build is not None
    built: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def from_api_route(cls: Any, *, original_route: Any, include_context: Any) -> Any:
        try:
            key = (
                id(original_route),
                id(include_context.included_router),
                include_context.prefix,
                tuple(id(d) for d in include_context.dependencies),
                tuple(str(t) for t in include_context.tags),
                include_context.include_in_schema,
                include_context.max_body_size,
            )
        except AttributeError:
            return build(original_route=original_route, include_context=include_context)
        found = built.get(key)
        if found is not None and found[0] is original_route:
            return found[1]
        context = build(original_route=original_route, include_context=include_context)
        built[key] = (original_route, context)
        return context

    from_api_route.shared = True  # type: ignore[attr-defined]
    context_class.from_api_route = classmethod(from_api_route)
    return True

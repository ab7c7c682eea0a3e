"""A path a route names with fixed segments (`/invitations/accept`, `/media/usage`) is a resource
of its own, not the id of a route with a parameter in their place (`/invitations/{invitation_id}`).
Routing would hand such a path a method only the latter serves (DELETE), which then fails on the
id; the method is refused there with 405 instead, as any method a path does not serve."""

from __future__ import annotations

from collections.abc import Collection

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope


class Refusal(Route):
    """Takes `refused` methods at `path` to answer them 405; every other method passes on to
    the routes behind it. It serves no method itself (`methods` is None), so the `Allow` of a
    405 leaves it out."""

    def __init__(self, path: str, refused: Collection[str]) -> None:
        super().__init__(path, _refuse, include_in_schema=False)
        self.methods, self.refused = None, frozenset(refused)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.NONE or scope.get("method") not in self.refused:
            return Match.NONE, {}
        return match, {**child_scope, "route": self}


async def _refuse(request: Request) -> Response:
    raise HTTPException(405)


def claim_fixed_paths(app: FastAPI) -> None:
    """Puts a `Refusal` before every route of `app` (once all are included) at each path a
    route with a parameter in place of a fixed segment would take methods from."""
    served: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.router.routes):
        if route.methods and route.path:
            served.setdefault(route.path, set()).update(route.methods)
    for path, methods in served.items():
        taken = {m for other, others in served.items() if _shadows(other, path) for m in others}
        if taken - methods:
            app.router.routes.insert(0, Refusal(path, taken - methods))


def _shadows(general: str, fixed: str) -> bool:
    """`general` has a parameter where `fixed` has a fixed segment, and is alike elsewhere."""
    ours, theirs = general.split("/"), fixed.split("/")
    return (len(ours) == len(theirs) and general.count("{") > fixed.count("{")
            and all(a == b or a.startswith("{") for a, b in zip(ours, theirs, strict=True)))

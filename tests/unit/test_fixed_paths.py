"""A path named with fixed segments is routed as its own resource, whatever the routes with a
parameter in their place, in whichever router, serve."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from bloop.platform.kit.errors import install_error_handlers
from bloop.platform.kit.fixed_paths import claim_fixed_paths


async def test_the_methods_of_an_id_route_are_refused_at_a_fixed_path_beside_it() -> None:
    app = FastAPI()
    install_error_handlers(app)
    by_id = APIRouter(prefix="/v1/things")
    fixed = APIRouter(prefix="/v1/things")

    @by_id.get("/{thing}")
    @by_id.delete("/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        return {"thing": thing}

    @fixed.post("/sort")
    async def sort() -> dict[str, str]:
        return {"sorted": "yes"}

    app.include_router(by_id)
    app.include_router(fixed)
    claim_fixed_paths(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bloop.test") as c:
        for method in ("GET", "DELETE", "PUT"):
            r = await c.request(method, "/v1/things/sort")
            assert r.status_code == 405, (method, r.text)
            assert r.headers["allow"] == "POST", method
        assert (await c.post("/v1/things/sort")).json() == {"sorted": "yes"}
        assert (await c.delete("/v1/things/t1")).json() == {"thing": "t1"}
        assert (await c.get("/v1/things/t1")).json() == {"thing": "t1"}

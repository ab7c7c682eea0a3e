"""GraphiQL, the in-browser IDE that `/graphql` shows a browser: GraphiQL 3 with its explorer
plugin. Its scripts and styles are served by the app (under `/graphql/ide/`) from `ASSETS_DIR`,
which `make install` fills from the npm registry (`python -m bloop.graphql.ide_fetch`), each
with a gzipped copy for browsers that take gzip (graphiql.js is 3.5 MB, 0.7 MB gzipped); where
that did not happen the page loads the same files, checked by the same hashes, from unpkg.com.

The page is a route of its own that takes only what a browser asks for the page (a GET without a
`query` that accepts HTML), so anyone may load it while every query still needs a signed-in
caller."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.routing import Match
from starlette.staticfiles import NotModifiedResponse
from starlette.types import Scope

from bloop.platform.demo.data import Person
from bloop.platform.demo.sign_ins import DemoSignIns
from bloop.platform.kit.auth import TOKEN_URL
from bloop.platform.kit.favicon import DATA_URL as ICON

ASSETS_DIR = Path(__file__).parent / "ide_assets"
CDN = "https://unpkg.com"
REGISTRY = "https://registry.npmjs.org"
PAGE = Template((Path(__file__).parent / "graphiql.html").read_text())


@dataclass(frozen=True)
class Asset:
    """One file of an npm package, known by its Subresource Integrity hash."""

    name: str  # the file name it is served and kept under
    package: str
    version: str
    path: str  # in the package
    integrity: str

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.package}/-/{self.package.rpartition('/')[2]}-{self.version}.tgz"

    @property
    def cdn_url(self) -> str:
        return f"{CDN}/{self.package}@{self.version}/{self.path}"


ASSETS = {a.name: a for a in (
    Asset("react.js", "react", "18.2.0", "umd/react.production.min.js",
          "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"),
    Asset("react-dom.js", "react-dom", "18.2.0", "umd/react-dom.production.min.js",
          "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"),
    Asset("graphiql.js", "graphiql", "3.8.3", "graphiql.min.js",
          "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie"),
    Asset("graphiql.css", "graphiql", "3.8.3", "graphiql.min.css",
          "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM"),
    Asset("explorer.js", "@graphiql/plugin-explorer", "1.0.2", "dist/index.umd.js",
          "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9"),
    Asset("explorer.css", "@graphiql/plugin-explorer", "1.0.2", "dist/style.css",
          "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi"),
)}


class AssetFiles(StaticFiles):
    """The asset files, sent gzipped to a client that takes gzip when the copy is there."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code != 200:
            return response
        response.headers["vary"] = "accept-encoding"
        request_headers = Headers(scope=scope)
        zipped = Path(str(self.directory)) / f"{path}.gz"
        if "gzip" not in request_headers.get("accept-encoding", "") or not zipped.is_file():
            return response
        response = FileResponse(zipped, stat_result=zipped.stat(), media_type=response.media_type,
                                headers={"content-encoding": "gzip", "vary": "accept-encoding"})
        if self.is_not_modified(response.headers, request_headers):
            return NotModifiedResponse(response.headers)
        return response


def served_locally(assets_dir: Path = ASSETS_DIR) -> bool:
    return all((assets_dir / name).is_file() for name in ASSETS)


def asks_for_the_page(scope: Scope) -> bool:
    """What strawberry answers with its IDE: a GET without a `query` that accepts HTML."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    request = Request(scope)
    accept = request.headers.get("accept", "")
    return "query" not in request.query_params and ("text/html" in accept or "*/*" in accept)


class PageRoute(APIRoute):
    """Matches only requests for the page; any other request to the path goes on to the API."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and not asks_for_the_page(scope):
            return Match.NONE, {}
        return match, child


EXAMPLE_WIDTH = 46  # what the query editor shows of a line in a 1280 px wide window


def example(tenant: str | None) -> str:
    return ("# Bloop's GraphQL API. Every query needs a\n"
            "# signed-in caller: sign in with the person\n"
            "# icon on the left, which puts an access token\n"
            "# in the Headers tab below.\n"
            "#\n"
            "# Ctrl-Enter runs a query; Ctrl-Space\n"
            "# completes a field. The courses of a tenant,\n"
            "# with their lessons, a page at a time (`next`\n"
            "# is the following page's `after`):\n"
            "{\n"
            f'  courses(tenant: "{tenant or "your-tenant"}", first: 20) {{\n'
            "    items {\n"
            "      title\n"
            "      lessons {\n"
            "        title\n"
            "        estimatedMinutes\n"
            "      }\n"
            "    }\n"
            "    next\n"
            "  }\n"
            "}\n")


def tags(assets_url: str | None) -> str:
    """The page's scripts and styles, in the order the scripts must run: from `assets_url`, or
    from the CDN when None."""
    lines = []
    for name, asset in ASSETS.items():
        url = html.escape(f"{assets_url}/{name}" if assets_url else asset.cdn_url)
        lines.append(f'<link rel="stylesheet" href="{url}" integrity="{asset.integrity}" '
                     'crossorigin>' if name.endswith(".css") else
                     f'<script src="{url}" integrity="{asset.integrity}" crossorigin></script>')
    return "\n".join(lines)


def page(assets_url: str | None, root_path: str, tenant: str | None,
         people: Sequence[Person]) -> str:
    def js(value: object) -> str:
        return json.dumps(value).replace("<", "\\u003c")

    return PAGE.substitute(
        assets=tags(assets_url),
        example_query=js(example(tenant)),
        icon=html.escape(ICON),
        token_url=js(root_path + TOKEN_URL),
        demo_tenant=js(tenant),
        demo_people=js([{"name": p.display_name, "roles": ", ".join(p.roles), "email": p.email,
                         "password": p.password} for p in people]))


def install_graphiql(app: FastAPI, path: str, *, demo_tenant: str | None = None,
                     demo_people: DemoSignIns | None = None,
                     assets_dir: Path = ASSETS_DIR) -> None:
    """Before the GraphQL routes are included: the page at `path`, and its files when they are
    here. With a demo tenant, its example query reads that tenant's courses and its sign-in
    offers those of `demo_people` who still sign in with their public passwords."""
    assets_url = f"{path}/ide" if served_locally(assets_dir) else None
    if assets_url:
        app.mount(assets_url, AssetFiles(directory=assets_dir), name="graphiql-assets")

    async def graphiql(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        people = await demo_people.offered() if demo_people else []
        return HTMLResponse(page(root + assets_url if assets_url else None, root, demo_tenant,
                                 people))

    app.router.add_api_route(path, graphiql, methods=["GET"], include_in_schema=False,
                             route_class_override=PageRoute)

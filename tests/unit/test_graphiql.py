"""GraphiQL at `/graphql`: the page loads for anyone, from the app's own files when they were
fetched, while every query still needs a signed-in caller; the fetch keeps only files with their
known hashes."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.graphql import ide
from bloop.graphql.ide import ASSETS, ASSETS_DIR, EXAMPLE_WIDTH, Asset, example, install_graphiql
from bloop.graphql.ide_fetch import IntegrityError, fetch, integrity_of
from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.favicon import DATA_URL as ICON
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import member

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)),
                     services=["identity", "content"], seed=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
            yield app, c


def sources(page: str) -> list[str]:
    return [u for u in re.findall(r'(?:src|href)="([^"]+)"', page) if not u.startswith("data:")]


async def test_a_browser_gets_the_page_without_signing_in(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    page = await c.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'courses(tenant: \\"demo\\", first: 20)' in page.text
    assert len(re.findall(r'integrity="sha384-', page.text)) == len(ASSETS)
    # its sign-in asks the token endpoint, offering the demo people
    assert 'fetch("/v1/auth/token"' in page.text
    offered = re.search(r"const people = (\[.*?\])\.map", page.text)
    assert offered is not None
    people = json.loads(offered.group(1))
    assert [p["email"] for p in people] == [p.email for p in data.PEOPLE]


async def test_without_the_demo_the_page_offers_no_people(tmp_path: Path) -> None:
    app = FastAPI()
    install_graphiql(app, "/graphql", assets_dir=tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        page = (await c.get("/graphql", headers=HTML)).text
    assert "const people = [].map" in page
    assert 'useState(null || "")' in page
    assert 'courses(tenant: \\"your-tenant\\", first: 20)' in page


async def test_the_page_reads_well_on_a_phone_and_to_a_screen_reader(tmp_path: Path) -> None:
    page = await the_page(tmp_path)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<html lang="en">' in page
    assert re.search(r'<h1 class="visually-hidden">Bloop GraphQL</h1>', page)
    assert f'<link rel="icon" href="{ICON}">' in page  # asks for no /favicon.ico
    # A phone's width stacks the response below the editors (side by side it was a column of
    # single characters, and the page could not scroll to what it cut off).
    assert "width: 100%; overflow: hidden" not in page
    assert "@media (max-width: 700px)" in page
    # The sign-in panel's messages are announced, and its fields say what they hold.
    assert 'role: "status"' in page
    assert '"current-password"' in page
    assert '"username"' in page
    # the starting query's comments fit the editor of a 1280 px wide window
    for tenant in ("demo", None):
        lines = example(tenant).splitlines()
        assert max(len(line) for line in lines) <= EXAMPLE_WIDTH < 50
        assert lines[0].startswith("# Bloop's GraphQL API.")


async def test_the_page_reads_the_schema_only_with_a_credential(tmp_path: Path) -> None:
    """Before signing in, no introspection (which would answer 401, shown raw in the results);
    the Headers tab starts without an `Authorization: Bearer ` of no token."""
    page = await the_page(tmp_path)
    assert "defaultHeaders" not in page
    assert 'Bearer \\"' not in page
    assert "schema: signedIn ? undefined : null," in page  # null: GraphiQL does not introspect
    assert "useState(() => sendsCredential(storedHeaders()))" in page
    assert "onEditHeaders: (text) => setSignedIn(sendsCredential(text))," in page
    assert "signInPlugin(() => { setSignedIn(true); setFetcher(newFetcher); })" in page
    # a 401 (an expired token kept from an earlier visit) says what to do
    assert "GraphiQL.createFetcher({ url, fetch: explained401 })" in page
    assert 'const SIGN_IN = "Sign in (the person icon on the left) to run queries";' in page


async def test_queries_still_need_a_signed_in_caller(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, c = client
    query = "{ courses(tenant: \"demo\") { items { title } } }"
    asked = [c.get("/graphql", params={"query": query}, headers=HTML),
             c.get("/graphql", params={"query": query}),
             c.get("/graphql", headers={"accept": "application/json"}),
             c.post("/graphql", json={"query": query}, headers=HTML)]
    for request in asked:
        r = await request
        assert r.status_code == 401, r.text
        assert r.headers["content-type"] == "application/problem+json"
    c.headers.update(await member(app, c, tenant="demo", roles=("learner",)))
    for r in (await c.get("/graphql", params={"query": query}, headers=HTML),
              await c.post("/graphql", json={"query": query})):
        assert r.status_code == 200, r.text
        assert r.json()["data"]["courses"]["items"][0]["title"]


def app_with_page(assets_dir: Path) -> FastAPI:
    app = FastAPI()
    install_graphiql(app, "/graphql", assets_dir=assets_dir)
    return app


async def the_page(tmp_path: Path) -> str:
    transport = httpx.ASGITransport(app=app_with_page(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        return (await c.get("/graphql", headers=HTML)).text


async def test_the_page_loads_the_apps_own_files_when_they_are_here(tmp_path: Path) -> None:
    for name in ASSETS:
        (tmp_path / name).write_text(f"/* {name} */")
    transport = httpx.ASGITransport(app=app_with_page(tmp_path), root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        page = (await c.get("/api/graphql", headers=HTML)).text
        urls = sources(page)
        assert urls == [f"/api/graphql/ide/{name}" for name in ASSETS]
        assert "://" not in page
        for name in ASSETS:
            r = await c.get(f"/api/graphql/ide/{name}")
            assert r.status_code == 200
            assert r.text == f"/* {name} */"


async def test_a_browser_that_takes_gzip_gets_the_gzipped_copy(tmp_path: Path) -> None:
    script = b"/* graphiql */ " * 1000
    for name in ASSETS:
        (tmp_path / name).write_bytes(script)
    (tmp_path / "graphiql.js.gz").write_bytes(gzip.compress(script))
    transport = httpx.ASGITransport(app=app_with_page(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        zipped = await c.get("/graphql/ide/graphiql.js", headers={"accept-encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert int(zipped.headers["content-length"]) < len(script) / 10
        assert zipped.content == script  # as the browser decodes it, for its integrity check
        assert zipped.headers["content-type"].startswith("text/javascript")
        assert zipped.headers["vary"] == "accept-encoding"
        again = await c.get("/graphql/ide/graphiql.js", headers={
            "accept-encoding": "gzip", "if-none-match": zipped.headers["etag"]})
        assert again.status_code == 304
        plain = await c.get("/graphql/ide/graphiql.js", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == script
        assert plain.headers["etag"] != zipped.headers["etag"]
        assert plain.headers["vary"] == "accept-encoding"
        unzipped = await c.get("/graphql/ide/react.js", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in unzipped.headers  # no copy: the file as it is
        assert (await c.get("/graphql/ide/graphiql.js.gz.gz")).status_code == 404


async def test_without_its_files_the_page_loads_them_from_unpkg(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=app_with_page(tmp_path / "none"))
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        page = (await c.get("/graphql", headers=HTML)).text
        assert sources(page) == [a.cdn_url for a in ASSETS.values()]
        assert (await c.get("/graphql/ide/graphiql.js")).status_code == 404


def tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def asset(data: bytes, path: str = "dist/lib.js") -> Asset:
    return Asset("lib.js", "@scope/lib", "1.2.3", path, integrity_of(data))


def test_fetch_keeps_a_file_with_its_hash_and_fetches_it_once(tmp_path: Path) -> None:
    good = asset(b"console.log(1)")
    asked: list[str] = []

    def get(url: str) -> bytes:
        asked.append(url)
        return tarball({"dist/lib.js": b"console.log(1)", "README.md": b"lib"})

    assert fetch(tmp_path, [good], get) == ["lib.js"]
    assert (tmp_path / "lib.js").read_bytes() == b"console.log(1)"
    assert gzip.decompress((tmp_path / "lib.js.gz").read_bytes()) == b"console.log(1)"
    assert asked == ["https://registry.npmjs.org/@scope/lib/-/lib-1.2.3.tgz"]
    (tmp_path / "lib.js.gz").unlink()  # files fetched before there were gzipped copies
    assert fetch(tmp_path, [good], get) == []
    assert len(asked) == 1
    assert gzip.decompress((tmp_path / "lib.js.gz").read_bytes()) == b"console.log(1)"


@pytest.mark.parametrize("files", [{"dist/lib.js": b"console.log(2)"}, {"other.js": b"x"}])
def test_fetch_refuses_a_file_without_its_hash(tmp_path: Path, files: dict[str, bytes]) -> None:
    with pytest.raises(IntegrityError):
        fetch(tmp_path, [asset(b"console.log(1)")], lambda url: tarball(files))
    assert list(tmp_path.iterdir()) == []


def test_the_fetched_files_have_their_hashes() -> None:
    """`make install` fetches them; only a machine that could not reach the npm registry lacks
    them, and CI is not such a machine."""
    if not ide.served_locally() and not os.environ.get("CI"):
        pytest.skip("GraphiQL's files were not fetched here (`make install` fetches them)")
    for name, known in ASSETS.items():
        data = (ASSETS_DIR / name).read_bytes()
        assert integrity_of(data) == known.integrity, name
        assert gzip.decompress((ASSETS_DIR / f"{name}.gz").read_bytes()) == data, name

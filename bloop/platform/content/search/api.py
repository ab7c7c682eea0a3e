"""Search over a tenant's published courses and lessons: any member of the tenant may search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bloop.platform.content.api import TenantId
from bloop.platform.content.model import Level
from bloop.platform.content.search.model import Filters, SearchResults
from bloop.platform.content.search.service import SearchService
from bloop.platform.kit.auth import Principal, require
from bloop.platform.kit.pagination import MAX_CURSOR, After

MAX_QUERY_CHARS = 256
MAX_LIMIT = 50


async def get_search(request: Request) -> SearchService:
    service: SearchService = request.app.state.content.state["search"]
    return service


Svc = Annotated[SearchService, Depends(get_search)]
Reader = Annotated[Principal, Depends(require(scopes=["content:read"]))]

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["search"])


@router.get("/search")
async def search(
    tenant: TenantId, service: Svc, _: Reader,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description=(
        'words (each must match), "a phrase", -excluded; blank lists everything'))] = "",
    language: Annotated[str | None, Query(min_length=2, max_length=35)] = None,
    level: Level | None = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    after: After = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR, deprecated=True,
                                        description="the former name of `after`")] = None,
) -> SearchResults:
    """The tenant's published courses and lessons matching `q` and the filters, best first
    (BM25 over the tenant's own documents, the title counting most; a hit carries no score),
    with facet counts over every match; `next` is the cursor (`after`) of the following page.
    `language` and `tag` ignore case."""
    filters = Filters(language=language, level=level, tag=tag)
    return await service.search(tenant, q, filters, limit=limit, after=after or cursor)

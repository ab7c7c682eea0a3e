"""Search settings, from `BLOOP_SEARCH_*` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bloop.platform.kit.settings import NamedPath

INDEX_META = "bloop-search.json"
"""The file that marks a directory as a search index."""


def _index_or_empty(directory: Path) -> Path:
    try:
        foreign = (directory.is_dir() and not (directory / INDEX_META).exists()
                   and any(directory.iterdir()))
    except OSError as exc:
        raise ValueError(f"cannot be looked at ({exc.strerror})") from None
    if foreign:
        raise ValueError("holds files but no search index; name an empty or new directory")
    return directory


class SearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOOP_SEARCH_", extra="ignore", frozen=True)

    directory: Annotated[NamedPath, AfterValidator(_index_or_empty)] | None = Field(
        default=None, description=(
            "where this process keeps its index (an empty or new directory, or one that holds "
            "an index); BLOOP_DATA_DIR/search when unset. One process per directory."))
    writer_heap_mb: int = Field(default=32, ge=15, le=1024,
                                description="the index writer's memory budget")
    clock_skew_s: float = Field(default=300.0, ge=0, description=(
        "events older than the index's last full build by more than this are already in it "
        "and are skipped without a read"))
    max_offset: int = Field(default=1000, ge=10, le=100_000,
                            description="how deep a search may page")

"""Search settings, from `BLOOP_SEARCH_*` variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bloop.platform.kit.settings import NamedPath


class SearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOOP_SEARCH_", extra="ignore", frozen=True)

    directory: NamedPath | None = Field(default=None, description=(
        "where this process keeps its index; BLOOP_DATA_DIR/search when unset. One process "
        "per directory."))
    writer_heap_mb: int = Field(default=32, ge=15, le=1024,
                                description="the index writer's memory budget")
    clock_skew_s: float = Field(default=300.0, ge=0, description=(
        "events older than the index's last full build by more than this are already in it "
        "and are skipped without a read"))
    max_offset: int = Field(default=1000, ge=10, le=100_000,
                            description="how deep a search may page")

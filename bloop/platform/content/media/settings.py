"""Media limits, from `BLOOP_MEDIA_*` variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bloop.platform.content.media.model import MediaKind

MB = 1024 * 1024


class MediaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOOP_MEDIA_", extra="ignore", frozen=True)

    image_max_bytes: int = Field(default=10 * MB, ge=1)
    audio_max_bytes: int = Field(default=100 * MB, ge=1)
    video_max_bytes: int = Field(default=1024 * MB, ge=1)
    pdf_max_bytes: int = Field(default=50 * MB, ge=1)
    archive_max_bytes: int = Field(default=200 * MB, ge=1)
    text_max_bytes: int = Field(default=2 * MB, ge=1)
    tenant_quota_bytes: int = Field(default=10 * 1024 * MB, ge=0,
                                    description="the bytes of media one tenant may keep in all")
    link_secret: SecretStr | None = Field(default=None, min_length=16, description=(
        "signs the links to media bytes that need no credentials (`…/media/{id}/link`; 16 "
        "characters at least); every "
        "content process of a deployment must share it (a random one per process when unset, "
        "which suits one process)"))
    link_ttl_s: int = Field(default=4 * 3600, ge=60, le=7 * 86_400, description=(
        "how long such a link works: long enough for a lesson left open, short enough that a "
        "shared link soon stops"))
    published_cache_s: float = Field(default=15.0, ge=0, description=(
        "how long a process keeps the set of media a tenant's published lessons reference "
        "(what learners may read); a miss reads it again once it is a second old"))
    sweep_interval_s: float = Field(default=3600.0, gt=0, description=(
        "how often each process sweeps the leftovers of uploads and imports a killed process "
        "left (spool files, import folders, stored bytes without their record)"))
    sweep_age_s: float = Field(default=3600.0, ge=600, description=(
        "how long a leftover must have gone unwritten before the sweep removes it: longer than "
        "any upload waits for its next bytes (`BLOOP_HTTP_BODY_IDLE_TIMEOUT_S`) and than any "
        "import takes, since other processes on the same data directory or GridFS may be "
        "uploading right now"))

    def max_bytes(self, kind: MediaKind) -> int:
        limits: dict[MediaKind, int] = {
            "image": self.image_max_bytes, "audio": self.audio_max_bytes,
            "video": self.video_max_bytes, "pdf": self.pdf_max_bytes,
            "archive": self.archive_max_bytes, "text": self.text_max_bytes}
        return limits[kind]

    @property
    def largest(self) -> int:
        return max(self.image_max_bytes, self.audio_max_bytes, self.video_max_bytes,
                   self.pdf_max_bytes, self.archive_max_bytes, self.text_max_bytes)

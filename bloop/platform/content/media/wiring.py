"""Builds media (and the uploads that use it) for content's mount: GridFS when MongoDB is real,
files under `BLOOP_DATA_DIR/media` otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from bloop.platform.content.media.ports import MediaStore
from bloop.platform.content.media.refs import referenced_media
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.media.settings import MediaSettings
from bloop.platform.content.service import ContentService
from bloop.platform.content.uploads.holds import ImportHolds
from bloop.platform.kit.wiring import Platform

# Routes that read and limit their own request bodies, beyond BLOOP_HTTP_MAX_BODY_BYTES.
LARGE_BODIES = ("/v1/tenants/{tenant}/media", "/v1/tenants/{tenant}/courses/{course}/uploads")


def media_store(platform: Platform) -> MediaStore:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.content.media.stores.gridfs import GridFsMediaStore

        return GridFsMediaStore(platform.require_mongo())
    from bloop.platform.content.media.stores.files import FileMediaStore

    return FileMediaStore(platform.sqlite("content"), platform.settings.runtime.data_dir / "media")


def media_service(platform: Platform, content: ContentService,
                  settings: MediaSettings | None = None) -> MediaService:
    async def published_media(tenant: str) -> set[str]:
        # learners enrolled in an archived course still read it
        courses = [*await content.every_course(tenant, "published"),
                   *await content.every_course(tenant, "archived")]
        lessons = await content.published_lessons_of(tenant, courses)
        return referenced_media(x for found in lessons.values() for x in found)

    return MediaService(media_store(platform), settings or MediaSettings(),
                        platform.settings.runtime.data_dir / "spool", published_media)


def import_holds(platform: Platform) -> ImportHolds:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.content.uploads.stores.mongo import MongoImportHolds

        return MongoImportHolds(platform.require_mongo())
    from bloop.platform.content.uploads.stores.embedded import EmbeddedImportHolds

    return EmbeddedImportHolds(platform.sqlite("content"))


def media_state(platform: Platform, content: ContentService) -> dict[str, object]:
    """What content's `Mounted.state` holds for media, uploads and exports; `media_setup`
    readies it."""
    from bloop.platform.content.uploads.export import ExportService
    from bloop.platform.content.uploads.service import UploadService

    media = media_service(platform, content)
    return {"media": media, "uploads": UploadService(media, content, import_holds(platform)),
            "exports": ExportService(content, media)}


async def media_setup(state: dict[str, object]) -> None:
    """Readies media and the import holds, and starts the sweeps of imports that died part-way
    and of what killed uploads left (`media_close` stops them)."""
    from bloop.platform.content.uploads.service import UploadService

    media, uploads = state["media"], state["uploads"]
    assert isinstance(media, MediaService)
    assert isinstance(uploads, UploadService)
    await media.setup()
    await uploads.holds.setup()
    uploads.sweeper.start()
    media.sweeper.start()


async def media_close(state: dict[str, object]) -> None:
    from bloop.platform.content.uploads.service import UploadService

    media, uploads = state["media"], state["uploads"]
    assert isinstance(media, MediaService)
    assert isinstance(uploads, UploadService)
    await uploads.sweeper.stop()
    await media.sweeper.stop()


def media_routers() -> Sequence[APIRouter]:
    from bloop.platform.content.media.api import lessons, router
    from bloop.platform.content.uploads.api import router as uploads

    return (router, lessons, uploads)

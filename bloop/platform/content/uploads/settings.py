"""Import (and export) limits, from `BLOOP_UPLOAD_*` variables. Each file is also held to
media's limits (`BLOOP_MEDIA_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024


class UploadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOOP_UPLOAD_", extra="ignore", frozen=True)

    max_request_bytes: int = Field(default=1100 * MB, ge=1024,
                                   description="the whole multipart request")
    max_files: int = Field(default=50, ge=1, le=1000)
    zip_max_entries: int = Field(default=2000, ge=1)
    zip_max_unpacked_bytes: int = Field(default=1024 * MB, ge=1)
    zip_max_ratio: float = Field(default=200.0, gt=1,
                                 description="the most an entry may expand over its packed size")
    pdf_max_pages: int = Field(default=1000, ge=1)
    pdf_max_cpu_s: int = Field(default=120, ge=1, description=(
        "CPU time to read one PDF's text (a child process, killed past it): a lecture's hundreds "
        "of pages take seconds"))
    pdf_max_memory_bytes: int = Field(default=1024 * MB, ge=128 * MB,
                                      description="that process's address space")
    pdf_timeout_s: float = Field(default=600.0, gt=0, description=(
        "the longest wait for it, its turn and CPU time or not (a loaded machine): 503 past it"))
    pdf_readers: int = Field(default=2, ge=1, description=(
        "PDF readers at once in a process (each may take a core and its memory limit); other "
        "PDFs wait their turn, and one tenant's beyond all of them but one wait while another "
        "tenant's PDF waits"))
    exports_at_once: int = Field(default=4, ge=1, description=(
        "course exports a process builds at once (each writes its whole zip to the spool "
        "first; sending a built zip, kept there until sent, is not counted); 503 "
        "`too_many_exports` beyond, or beyond a user's share (half) or a tenant's (all but "
        "one, while another tenant builds or asked within 60 s)"))
    exports_waiting: int = Field(default=16, ge=1, description=(
        "course exports' zips a process keeps in its spool at once, those being built and "
        "those built and waiting for their clients to read them; 503 `too_many_exports` "
        "beyond, or beyond a user's share (a quarter) or a tenant's (all but one, while "
        "another tenant keeps one or asked within 60 s)"))
    exports_waiting_bytes: int = Field(default=4 * 1024 * MB, ge=MB, description=(
        "the bytes of the built zips a process keeps in its spool for their clients: a new "
        "export is 503 `too_many_exports` while they hold this many (those being built may "
        "still add theirs)"))
    export_send_idle_s: float = Field(default=120.0, gt=0, description=(
        "how long sending an export's zip waits for its client to take a chunk (256 KB) "
        "before it gives up, closes the connection and removes the zip"))
    front_matter_max_bytes: int = Field(default=16 * 1024, ge=256)
    hold_s: float = Field(default=24 * 3600, ge=60, description=(
        "how long an import's hold on what it stores lasts: well past the longest import, since "
        "once it expires a sweep deletes the media of an import whose lessons were not stored "
        "(a process killed part-way)"))
    sweep_interval_s: float = Field(default=600.0, gt=0,
                                    description="how often each process sweeps expired holds")

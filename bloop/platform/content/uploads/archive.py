"""Unpacking an uploaded zip without trusting it: no entry may name a path outside the archive
(`../`, absolute paths, drive letters, backslashes) or be a link, and the unpacked size is held to
limits, both as the archive declares it and as the bytes actually come out (which stops a zip
bomb early, whatever its headers claim). Entries are written under names of our own, never
theirs."""

from __future__ import annotations

import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bloop.platform.kit.errors import Problem

READ_BYTES = 256 * 1024
RATIO_SETTING = "BLOOP_UPLOAD_ZIP_MAX_RATIO"  # UploadSettings.zip_max_ratio
_DRIVE = re.compile(r"^[A-Za-z]:")
_IGNORED = ("__MACOSX/",)


class UnsafeArchive(Problem):
    status, code = 422, "unsafe_archive"


class ArchiveTooLarge(Problem):
    status, code = 413, "archive_too_large"


@dataclass(frozen=True)
class Limits:
    max_entries: int
    max_unpacked_bytes: int
    max_ratio: float


@dataclass(frozen=True)
class Entry:
    name: str
    """The entry's path inside the archive (checked: relative, no `..`)."""
    path: Path
    """Where its bytes were written."""
    size: int


def _ignored(name: str) -> bool:
    base = PurePosixPath(name).name
    return name.startswith(_IGNORED) or base.startswith("._") or base in (".DS_Store",
                                                                          "Thumbs.db")


def check_name(name: str, source: str) -> None:
    if "\x00" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        raise UnsafeArchive(f"{source}: the entry {name!r} names an absolute path or uses "
                            "backslashes; archives must hold relative paths only",
                            extra={"file": source, "entry": name})
    if any(part == ".." for part in name.split("/")):
        raise UnsafeArchive(f"{source}: the entry {name!r} points outside the archive (..)",
                            extra={"file": source, "entry": name})


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


_END = struct.Struct("<4s4H2LH")  # the end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")


ENTRY_BYTES = 4096  # a directory entry: 46 bytes, its name, extra field and comment


def declared_directory(archive: Path) -> tuple[int, int] | None:
    """How many entries the archive's end record says it holds, and how many bytes its
    directory takes (ZIP64's too), read before the directory is: zipfile reads all of that into
    memory first, whatever the entry count says. None when there is no end record to read
    (zipfile then refuses the archive)."""
    with archive.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - (_END.size + 0xFFFF)))
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _END.size:
            return None
        end = _END.unpack_from(tail, at)
        entries, directory = int(end[4]), int(end[5])
        locator = at - _END64_LOCATOR.size
        if (entries != 0xFFFF and directory != 0xFFFFFFFF) or locator < 0 or (
                tail[locator:locator + 4] != b"PK\x06\x07"):
            return entries, directory
        f.seek(_END64_LOCATOR.unpack_from(tail, locator)[2])
        record = f.read(_END64.size)
        if len(record) < _END64.size or record[:4] != b"PK\x06\x06":
            return None
        end64 = _END64.unpack(record)
        return int(end64[7]), int(end64[8])


def unpack(archive: Path, into: Path, limits: Limits, source: str) -> list[Entry]:
    """The archive's files (directories and OS clutter left out), written under `into`. Raises
    `UnsafeArchive` (422) or `ArchiveTooLarge` (413) before writing anything when the headers
    already tell, and stops as soon as the bytes coming out break a limit."""
    declared_dir = declared_directory(archive)
    if declared_dir is not None and (declared_dir[0] > limits.max_entries
                                     or declared_dir[1] > limits.max_entries * ENTRY_BYTES):
        raise ArchiveTooLarge(f"{source}: the archive holds {declared_dir[0]} entries in "
                              f"{declared_dir[1]} bytes of directory, more than "
                              f"{limits.max_entries} entries", extra={"file": source})
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsafeArchive(f"{source}: not a readable zip archive ({exc})",
                            code="invalid_archive", extra={"file": source}) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveTooLarge(f"{source}: the archive holds {len(infos)} entries, more than "
                                  f"{limits.max_entries}", extra={"file": source})
        wanted: list[zipfile.ZipInfo] = []
        seen: set[str] = set()
        declared = 0
        for info in infos:
            name = info.filename
            check_name(info.orig_filename, source)  # zipfile cuts a name at a NUL: `filename` hides it
            if _is_link(info):
                raise UnsafeArchive(f"{source}: the entry {name!r} is a symbolic link; links "
                                    "are not accepted", extra={"file": source, "entry": name})
            if info.is_dir() or _ignored(name):
                continue
            if name.lower() in seen:
                raise UnsafeArchive(f"{source}: the entry {name!r} appears twice",
                                    extra={"file": source, "entry": name})
            seen.add(name.lower())
            if info.flag_bits & 0x1:
                raise UnsafeArchive(f"{source}: the entry {name!r} is encrypted",
                                    extra={"file": source, "entry": name})
            if info.file_size > 0 and (
                    info.compress_size == 0
                    or info.file_size / info.compress_size > limits.max_ratio):
                raise UnsafeArchive(
                    f"{source}: the entry {name!r} would expand {info.file_size} bytes out of "
                    f"{info.compress_size}, more than {limits.max_ratio:g} times (a zip bomb? "
                    f"{RATIO_SETTING} raises the limit)",
                    code="zip_bomb", extra={"file": source, "entry": name})
            declared += info.file_size
            if declared > limits.max_unpacked_bytes:
                raise ArchiveTooLarge(f"{source}: the archive unpacks to more than "
                                      f"{limits.max_unpacked_bytes} bytes",
                                      extra={"file": source})
            wanted.append(info)
        return _extract(zf, wanted, into, limits, source)


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], into: Path, limits: Limits,
             source: str) -> list[Entry]:
    into.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    total = 0
    for n, info in enumerate(infos):
        target = into / f"entry-{n:05d}"
        written = 0
        try:
            with zf.open(info) as src, target.open("wb") as out:
                while chunk := src.read(READ_BYTES):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size:
                        raise UnsafeArchive(
                            f"{source}: the entry {info.filename!r} holds more bytes than its "
                            "header declares (a zip bomb?)", code="zip_bomb",
                            extra={"file": source, "entry": info.filename})
                    if total > limits.max_unpacked_bytes:
                        raise ArchiveTooLarge(f"{source}: the archive unpacks to more than "
                                              f"{limits.max_unpacked_bytes} bytes",
                                              extra={"file": source})
                    out.write(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                NotImplementedError, RuntimeError) as exc:
            raise UnsafeArchive(f"{source}: the entry {info.filename!r} cannot be unpacked "
                                f"({exc})", code="invalid_archive",
                                extra={"file": source, "entry": info.filename}) from None
        entries.append(Entry(name=info.filename, path=target, size=written))
    return entries

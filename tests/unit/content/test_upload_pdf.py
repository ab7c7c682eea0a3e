"""A PDF's text is read in a child process held to limits of CPU time, memory and wall time, so
a small PDF that makes pypdf work for minutes neither holds the server (its GIL, its event loop)
nor runs unbounded."""

from __future__ import annotations

import asyncio
import signal
import zlib
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.content.uploads import pdf
from bloop.platform.content.uploads.settings import UploadSettings
from bloop.platform.content.uploads.shares import Queue, Shares, tenant_share
from bloop.platform.kit import processes
from bloop.platform.kit.errors import Problem
from tests.unit.content import media_samples as s


def shared_stream_pdf(pages: int, decoded_bytes: int) -> bytes:
    """A few KB of PDF whose pages all draw one compressed content stream of `decoded_bytes`
    text operators: text extraction parses it again for every page."""
    stream = zlib.compress(b"BT /F1 1 Tf (a) Tj ET\n" * (decoded_bytes // 22), 9)
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
               + b"\nendstream"]
    objects += [f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] /Contents 3 0 R "
                f"/Resources << /Font << /F1 {4 + pages} 0 R >> >> >>".encode()] * pages
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
                  f"startxref\n{xref}\n%%EOF\n").encode()


@pytest.fixture
def bomb(tmp_path: Path) -> Path:
    """Minutes of pypdf's CPU time (a one-page 2 MB version took 3.8 s) in under 16 KB."""
    path = tmp_path / "bomb.pdf"
    path.write_bytes(shared_stream_pdf(pages=32, decoded_bytes=2 * 1024 * 1024))
    assert path.stat().st_size < 16_000
    return path


async def test_a_pdf_past_the_cpu_limit_is_refused(bomb: Path) -> None:
    with pytest.raises(Problem) as caught:
        await pdf.read_pdf(bomb, "bomb.pdf", UploadSettings(pdf_max_cpu_s=1))
    assert (caught.value.status, caught.value.code) == (422, "pdf_too_complex")
    assert "1 s of CPU (BLOOP_UPLOAD_PDF_MAX_CPU_S)" in caught.value.detail
    assert caught.value.extra == {"file": "bomb.pdf"}


async def test_a_cancelled_read_kills_its_reader(bomb: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()
    procs: list[processes.Process] = []
    spawn = processes.start

    async def spawned(*args: Any, **kwargs: Any) -> processes.Process:
        procs.append(await spawn(*args, **kwargs))
        started.set()
        return procs[0]

    monkeypatch.setattr(processes, "start", spawned)
    task = asyncio.create_task(pdf.read_pdf(bomb, "bomb.pdf", UploadSettings()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert procs[0].returncode == -signal.SIGKILL


async def test_a_reader_past_its_time_answers_503(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(s.pdf("Hello"))
    with pytest.raises(Problem) as caught:  # no process starts and reads a PDF in 1 ms
        await pdf.read_pdf(path, "a.pdf", UploadSettings(pdf_timeout_s=0.001))
    assert (caught.value.status, caught.value.code) == (503, "pdf_reader_unavailable")
    assert "BLOOP_UPLOAD_PDF_TIMEOUT_S" in caught.value.detail
    assert caught.value.headers["Retry-After"]


async def test_a_reader_that_fails_answers_503(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(s.pdf("Hello"))
    monkeypatch.setattr(pdf, "READER", "bloop.no_such_module")
    with pytest.raises(Problem) as caught:
        await pdf.read_pdf(path, "a.pdf", UploadSettings())
    assert (caught.value.status, caught.value.code) == (503, "pdf_reader_unavailable")


async def test_a_read_waits_for_a_free_reader_within_its_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reader may take a core and a gigabyte: imports at once started one each."""
    path = tmp_path / "a.pdf"
    path.write_bytes(s.pdf("Hello"))
    spawn = processes.start
    spawned: list[object] = []

    async def counted(*args: Any, **kwargs: Any) -> processes.Process:
        spawned.append(args)
        return await spawn(*args, **kwargs)

    monkeypatch.setattr(processes, "start", counted)
    readers = Queue(Shares(1, 1, 1))
    release = await readers.take(None, "globex")  # another PDF is being read
    with pytest.raises(Problem) as caught:
        await pdf.read_pdf(path, "a.pdf", UploadSettings(pdf_timeout_s=0.2), readers)
    assert (caught.value.status, caught.value.code) == (503, "pdf_reader_unavailable")
    assert spawned == []
    release()
    text = await pdf.read_pdf(path, "a.pdf", UploadSettings(), readers)
    assert "Hello" in text.pages[0]
    assert len(spawned) == 1


async def test_one_tenant_reads_on_every_reader_while_no_other_waits(tmp_path: Path) -> None:
    """A tenant held at most all the readers but one, even with none of another tenant's PDFs
    waiting: a single-school install read one PDF at a time of its two readers (and the second
    could time out with a reader idle). Beyond its share, a tenant takes a free reader while no
    other tenant's PDF waits."""
    path = tmp_path / "a.pdf"
    path.write_bytes(s.pdf("Hello"))
    readers = Queue(Shares(2, 2, tenant_share(2)))
    taken = await asyncio.wait_for(asyncio.gather(
        readers.take(None, "school"), readers.take(None, "school")), 5)
    assert readers.shares.taken == 2
    for give in taken:
        give()
    slow = await readers.take(None, "school")  # the school's slow PDF is being read
    text = await pdf.read_pdf(path, "a.pdf", UploadSettings(pdf_timeout_s=10), readers,
                              tenant="school")  # its second is read beside it
    assert "Hello" in text.pages[0]
    slow()
    assert (readers.shares.taken, readers.waiters) == (0, [])


async def test_another_tenants_waiting_pdf_goes_before_a_tenant_beyond_its_share() -> None:
    """Two slow PDFs of one tenant held both readers, and another tenant's one-page PDF waited
    behind that tenant's next ones: with another tenant's PDF waiting, a free reader goes first
    to a tenant under its share, then in turn."""
    readers = Queue(Shares(2, 2, tenant_share(2)))
    acme = [await asyncio.wait_for(readers.take(None, "acme"), 5) for _ in range(2)]
    queued = [asyncio.create_task(readers.take(None, t)) for t in ("acme", "acme", "globex")]
    await asyncio.sleep(0)
    assert not any(q.done() for q in queued)
    acme.pop()()  # acme holds one, its share: globex's goes first
    await asyncio.sleep(0)
    assert [q.done() for q in queued] == [False, False, True]
    acme.pop()()  # none of another tenant's waits: acme's, first in, first out
    await asyncio.sleep(0)
    assert [q.done() for q in queued] == [True, False, True]
    queued[2].result()()
    await asyncio.sleep(0)
    assert [q.done() for q in queued] == [True, True, True]
    for q in queued[:2]:
        q.result()()
    assert (readers.shares.taken, readers.waiters) == (0, [])


async def test_a_read_that_gives_up_leaves_no_place_taken() -> None:
    readers = Queue(Shares(1, 1, 1))
    held = await readers.take(None, "acme")
    waiting = asyncio.create_task(readers.take(None, "globex"))
    await asyncio.sleep(0)
    held()  # handed to the waiter, which gives up before it runs
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (readers.shares.taken, readers.waiters) == (0, [])

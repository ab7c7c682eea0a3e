"""The search index on tantivy: a directory under the data dir (or memory, for tests).

Why tantivy: BM25 ranking over several weighted fields, phrase queries, term aggregations for the
facet counts and snippets with highlights, all in a Rust library embedded in this process (the
`tantivy` wheel): queries take about a millisecond, and there is no server to run, secure or keep
in step. MongoDB text indexes do not exist on FerretDB, and a search server would be one more
store to operate.

Each tenant has a tantivy index of its own (`tenants/<tenant>/` in the directory): BM25 weighs
a word by how many documents hold it and a text by the average length, and tantivy counts both
over the whole index it searches, so in one shared index what other tenants publish would move a
tenant's ranking (a tenant's educator could learn, from the order of their own results, whether
other tenants' courses use a word). Many tenants do not mean many writers: writes are serialised
and each opens the one writer it needs (one thread, one memory budget), commits and closes it;
at most `OPEN_INDEXES` tenants' indexes stay open for queries (each holds a thread of tantivy's
that watches its files), the least recently used closed first.

One process per directory: the process holds a lock on the directory (`in_use` tells). Writes
are committed before they return; queries run on a thread beside them.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import unicodedata
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import tantivy

from bloop.platform.content.model import SLUG_PATTERN
from bloop.platform.content.search.model import (
    FacetCount,
    Facets,
    Filters,
    Found,
    Hit,
    Position,
    Ranked,
    SearchDoc,
    Versions,
    tenant_of,
)
from bloop.platform.content.search.query import ParsedQuery, QuerySyntaxError
from bloop.platform.content.search.settings import INDEX_META as META
from bloop.platform.content.search.snippets import Snippets, folded
from bloop.platform.kit.errors import DISK_ERRNOS

# 2: an index per tenant; CJK and Thai split into characters, words up to 255 bytes; quizzes as
# learners see them; language tags in canonical case. 3: words keep their combining marks
# (Devanagari's virama and nukta split a Hindi word in three); text in NFC. 4: words folded
# (Russian ё without its dots; Arabic without its short vowels, superscript alef and tatweel),
# titles and texts as written stored apart. 5: code blocks' source. 6: tags in NFC (a tag
# stored decomposed matched no filter); keys a fast field (pages go on after a hit's key). An
# index of another version is emptied and built again from the store when the process starts.
SCHEMA_VERSION = 6
ANALYZER = "bloop_text"
TENANTS = "tenants"
OPEN_INDEXES = 32
MAX_WORD_BYTES = 255  # tantivy itself skips a token over 65,530 bytes
# How much each field's BM25 score counts: a word in the title says more than one in the text.
BOOSTS = {"title": 3.0, "tags_text": 2.0, "body": 1.0}
FACET_SIZES = {"language": 50, "level": 10, "tag": 50}
Occur = tantivy.Occur
Scored = tuple[float, tantivy.DocAddress]
T = TypeVar("T")
# tantivy raises an io error as a ValueError naming it: "Internal error: 'No space left on
# device (os error 28)'", or "Failed to open file for write: 'IoError { io_error: Custom { kind:
# StorageFull, error: PathError { path: …, err: Os { code: 28, kind: StorageFull, … } } }, …'".
_OS_ERROR = re.compile(r"\(os error (\d+)\)|\bOs \{ code: (\d+)")
# What adding a document raises once the writer's thread failed (writing the document store):
# no io error named; the commit that follows fails with it.
WRITER_KILLED = "An index writer was killed"


# Scripts written without spaces between words. Each of their letters is a word of its own, so
# a query in them (`中文`, several words) is a phrase of characters and matches inside a sentence
# (`中文课程介绍`); any other run of letters, digits and combining marks is one word (Unicode's
# Alphabetic, Numeric and Mark: a Hindi word keeps its virama and nukta). A zero-width
# non-joiner parts words, so a Persian query typed with a space instead finds them.
_UNSPACED = r"\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{Thai}"
WORDS = (rf"[\p{{Alphabetic}}\p{{N}}&&[{_UNSPACED}]]"
         rf"|[\p{{Alphabetic}}\p{{N}}\p{{M}}--[{_UNSPACED}]]+")


def composed(text: str) -> str:
    """`text` in NFC, as it is shown: a letter and its accent typed apart (`cafe` + U+0301) are
    the one letter accents fold (`café`)."""
    return unicodedata.normalize("NFC", text)


def searched(text: str) -> str:
    """`text` as it is indexed and searched: in NFC, folded (`ёлка` as `елка`)."""
    return folded(composed(text))


def analyzer() -> tantivy.TextAnalyzer:
    """Words split on anything but letters and digits, a character each in Chinese, Japanese
    and Thai, lowercased, accents folded (`café` finds `cafe`); no stemming, since courses come
    in many languages. A word of more than 255 bytes is left out. Text comes to it folded
    (`searched`)."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(WORDS))
            .filter(tantivy.Filter.remove_long(MAX_WORD_BYTES + 1))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .build())


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("key", stored=True, tokenizer_name="raw", fast=True)  # orders ties
    for name in ("kind", "id", "course_id"):
        b.add_text_field(name, stored=True, tokenizer_name="raw")
    b.add_text_field("tenant", tokenizer_name="raw")
    # The words, folded; the title and text as written (UTF-8), shown in hits.
    for name in ("title", "body", "tags_text"):
        b.add_text_field(name, tokenizer_name=ANALYZER)
    b.add_bytes_field("shown_title", stored=True)
    b.add_bytes_field("shown_body", stored=True)
    for name in ("language", "level", "tag"):
        b.add_text_field(name, stored=True, tokenizer_name="raw", fast=True)
    b.add_integer_field("course_version", stored=True)
    b.add_integer_field("lesson_version", stored=True)
    return b.build()


async def _to_the_end(fn: Callable[..., object], *args: object) -> None:
    """`fn(*args)` on a thread, awaited to its end even when the caller is cancelled (a
    consumer stopped mid-write): the thread runs on regardless, and the writer it holds must
    not be taken by the next holder of the lock (a close) meanwhile."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait({work})
        if not work.cancelled():
            work.exception()  # retrieved: the cancel is what the caller hears
        raise


def disk_refusal(exc: BaseException) -> OSError | None:
    """The OSError (a full disk, over quota, failing, read-only) that tantivy's ValueError
    wraps, as the kit takes a disk that refused a file; None for any other error."""
    if not isinstance(exc, ValueError):
        return None
    for found in _OS_ERROR.finditer(str(exc)):
        code = int(found.group(1) or found.group(2))
        if code in DISK_ERRNOS:
            refused = OSError(code, os.strerror(code))
            refused.__cause__ = exc
            return refused
    return None


def _disk_told(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)`, a disk's refusal raised as the OSError it is."""
    try:
        return fn(*args)
    except ValueError as exc:
        if (refused := disk_refusal(exc)) is None:
            raise
        raise refused from exc


def _try_lock(directory: Path) -> int | None:
    """A descriptor of `directory` holding its lock, or None when another holds it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _legacy_in_use(directory: Path) -> bool:
    """Whether a process holds an index of the first layout (one tantivy index in `directory`,
    no lock of ours) by its writer's lock."""
    if not (directory / "meta.json").exists():
        return False
    try:
        writer = tantivy.Index.open(str(directory)).writer(heap_size=15_000_000, num_threads=1)
    except ValueError as exc:
        return "LockBusy" in str(exc)
    writer.wait_merging_threads()  # gives the lock back
    return False


def in_use(directory: Path) -> bool:
    """Whether another process holds the index in `directory`."""
    if not (directory / META).exists():
        return False
    fd = _try_lock(directory)
    if fd is None:
        return True
    try:
        return _legacy_in_use(directory)
    finally:
        os.close(fd)  # and with it the lock


_SLUG = re.compile(SLUG_PATTERN)


def tenant_directory(tenant: str) -> str:
    """The name of `tenant`'s index under `tenants/`: its slug, or a digest of any other id."""
    if _SLUG.match(tenant):
        return tenant
    return "~" + hashlib.blake2s(tenant.encode(), digest_size=16).hexdigest()


class TantivyIndex:
    def __init__(self, directory: Path | None = None, *, writer_heap_mb: int = 32,
                 open_indexes: int = OPEN_INDEXES) -> None:
        """An index in `directory` (created, or opened when it holds one), or in memory."""
        self.schema = _schema()
        self._analyzer = analyzer()
        self._tokens = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(WORDS)).build()
        self._heap = writer_heap_mb * 1_000_000
        self._directory = directory
        self._max_open = open_indexes
        self._held: int | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._held = _try_lock(directory)
            if self._held is None:
                raise RuntimeError(f"another process holds the search index in {directory}")
        try:
            self._meta_path = directory / META if directory is not None else None
            self._meta = self._open_meta(directory)
        except BaseException:
            self._release()
            raise
        # The tenants' indexes open now, least recently used first; in memory, every one.
        self._open: OrderedDict[str, tantivy.Index] = OrderedDict()
        self._opening = threading.Lock()
        self._closed = False
        self._lock = asyncio.Lock()

    def _release(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    # -- meta: the index's id and when it was last built from the store ----------------------
    def _open_meta(self, directory: Path | None) -> dict[str, Any]:
        fresh: dict[str, Any] = {"schema": SCHEMA_VERSION, "index_id": uuid.uuid4().hex,
                                 "built_at": None}
        if directory is None:
            return fresh
        path = directory / META
        if path.exists():
            meta: dict[str, Any] = json.loads(path.read_text())
            if meta.get("schema") == SCHEMA_VERSION:
                return meta
            # An index of another version: emptied (our meta last, so that an interrupted
            # emptying is taken up again at the next start), then built again from the store;
            # unless a process of an earlier version serves it still.
            if _legacy_in_use(directory):
                raise RuntimeError(f"another process holds the search index in {directory}")
            for child in directory.iterdir():
                if child.name == META:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif any(directory.iterdir()):
            raise RuntimeError(f"{directory} holds files but no search index; point "
                               "BLOOP_SEARCH_DIRECTORY at an empty or new directory")
        self._save_meta(fresh, path)
        return fresh

    def _save_meta(self, meta: dict[str, Any], path: Path | None = None) -> None:
        path = path or self._meta_path
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, path)

    @property
    def index_id(self) -> str:
        return str(self._meta["index_id"])

    @property
    def built_at(self) -> datetime | None:
        at = self._meta.get("built_at")
        return None if at is None else datetime.fromisoformat(at)

    async def mark_built(self, started_at: datetime) -> None:
        meta = self._meta | {"built_at": started_at.isoformat()}
        await asyncio.to_thread(self._save_meta, meta)
        self._meta = meta

    # -- the tenants' indexes ----------------------------------------------------------------
    def _path(self, tenant: str) -> Path | None:
        if self._directory is None:
            return None
        return self._directory / TENANTS / tenant_directory(tenant)

    def _tenant(self, tenant: str, *, create: bool = False) -> tantivy.Index | None:
        """`tenant`'s index, opened when it is not open; None when it has none (and `create`
        is off)."""
        with self._opening:
            if self._closed:
                raise RuntimeError("the search index is closed")
            index = self._open.get(tenant)
            if index is not None:
                self._open.move_to_end(tenant)
                return index
            path = self._path(tenant)
            if path is None:
                if not create:
                    return None
            elif not (path / "meta.json").exists():
                if not create:
                    return None
                path.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self.schema, path=None if path is None else str(path),
                                  reuse=True)
            index.register_tokenizer(ANALYZER, self._analyzer)
            self._open[tenant] = index
            while path is not None and len(self._open) > self._max_open:
                self._open.popitem(last=False)  # dropped: its reader and its thread end
            return index

    def _tenants(self) -> list[str]:
        """The directory names of the tenants with an index (the tenants, in memory)."""
        if self._directory is None:
            with self._opening:
                return list(self._open)
        root = self._directory / TENANTS
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []

    # -- writes --------------------------------------------------------------------------------
    def _document(self, doc: SearchDoc) -> tantivy.Document:
        title, body = composed(doc.title), composed(doc.body)
        d = tantivy.Document(key=doc.key, kind=doc.kind, id=doc.id, course_id=doc.course_id,
                             tenant=doc.tenant, title=folded(title), body=folded(body),
                             tags_text=searched(" ".join(doc.tags)),
                             shown_title=title.encode(), shown_body=body.encode(),
                             language=doc.language, level=doc.level,
                             course_version=doc.course_version,
                             lesson_version=doc.lesson_version)
        for tag in doc.tags:
            d.add_text("tag", tag)
        return d

    def _apply_to(self, tenant: str, deletes: Sequence[str], docs: Sequence[SearchDoc]) -> None:
        index = self._tenant(tenant, create=bool(docs))
        if index is None:
            return  # nothing of the tenant to delete
        writer = index.writer(heap_size=self._heap, num_threads=1)
        try:
            for key in [*deletes, *(d.key for d in docs)]:
                writer.delete_documents_by_term("key", key)
            for doc in docs:
                writer.add_document(self._document(doc))
            writer.commit()
        except ValueError as exc:
            killed = WRITER_KILLED in str(exc)
            try:
                if killed:
                    writer.commit()  # fails with the error that killed the writer's thread
            except ValueError as cause:
                raise cause from exc
            finally:
                writer.rollback()
            raise
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()  # the writer ends: its threads, memory and lock
        index.reload()
        with self._opening:  # opened again meanwhile, once evicted: that one reads it too
            current = self._open.get(tenant)
        if current is not None and current is not index:
            current.reload()

    def _apply(self, deletes: Sequence[str], docs: Sequence[SearchDoc]) -> None:
        """Tenant by tenant, each committed before the next."""
        by_tenant: dict[str, tuple[list[str], list[SearchDoc]]] = defaultdict(lambda: ([], []))
        for key in deletes:
            by_tenant[tenant_of(key)][0].append(key)
        for doc in docs:
            by_tenant[doc.tenant][1].append(doc)
        for tenant, (keys, tenant_docs) in by_tenant.items():
            self._apply_to(tenant, keys, tenant_docs)

    async def write(self, docs: Sequence[SearchDoc]) -> None:
        if docs:
            async with self._lock:
                await _to_the_end(_disk_told, self._apply, (), docs)

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            async with self._lock:
                await _to_the_end(_disk_told, self._apply, keys, ())

    # -- reads ---------------------------------------------------------------------------------
    def _term(self, field: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, field, value)

    def _versions(self, keys: Sequence[str]) -> dict[str, Versions]:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_tenant[tenant_of(key)].append(key)
        found: dict[str, Versions] = {}
        for tenant, tenant_keys in by_tenant.items():
            index = self._tenant(tenant)
            if index is None:
                continue
            searcher = index.searcher()
            for key in tenant_keys:
                hits = searcher.search(self._term("key", key), 1).hits
                if hits:
                    doc = searcher.doc(hits[0][1])
                    found[key] = (int(doc.get_first("course_version") or 0),
                                  int(doc.get_first("lesson_version") or 0))
        return found

    async def versions(self, keys: Sequence[str]) -> dict[str, Versions]:
        return await asyncio.to_thread(_disk_told, self._versions, keys)

    def _count(self, tenant: str | None) -> int:
        if tenant is not None:
            index = self._tenant(tenant)
            return 0 if index is None else index.searcher().num_docs
        if self._directory is None:
            return sum(self._count(t) for t in self._tenants())
        total = 0
        for name in self._tenants():  # opened one at a time, and closed: not kept open
            path = self._directory / TENANTS / name
            if (path / "meta.json").exists():
                total += tantivy.Index.open(str(path)).searcher().num_docs
        return total

    async def count(self, tenant: str | None = None) -> int:
        return await asyncio.to_thread(_disk_told, self._count, tenant)

    def _any_field(self, words: list[str]) -> tantivy.Query:
        """`words` (analysed) in the title, tags or text: one word as a term, several as a
        phrase, each field's score weighted by its boost."""
        def one(field: str) -> tantivy.Query:
            q = (self._term(field, words[0]) if len(words) == 1
                 else tantivy.Query.phrase_query(self.schema, field, list(words)))
            return tantivy.Query.boost_query(q, BOOSTS[field])

        return tantivy.Query.boolean_query([(Occur.Should, one(f)) for f in BOOSTS])

    def _wanted(self, parsed: ParsedQuery) -> list[list[str]]:
        """The words and phrases a hit must have, analysed: several words are a phrase."""
        wanted = [words for text in (*parsed.words, *parsed.phrases)
                  if (words := self._analyzer.analyze(searched(text)))]
        if (parsed.words or parsed.phrases) and not wanted:
            raise QuerySyntaxError(f"the query has no words to search for (a word is letters "
                                   f"or digits, of at most {MAX_WORD_BYTES} bytes)")
        if any(not self._analyzer.analyze(searched(text)) for text in parsed.excluded):
            raise QuerySyntaxError("a `-` leaves out the word or phrase after it, and this one "
                                   "has no words")
        return wanted

    def _query(self, tenant: str, wanted: list[list[str]], parsed: ParsedQuery,
               filters: Filters) -> tantivy.Query:
        # Filters select without scoring, so the score is the text's relevance alone. The
        # tenant's index holds the tenant's documents only; its filter is one guard more.
        selected = [self._term("tenant", tenant)] + [
            self._term(name, value) for name, value in (
                ("language", filters.language), ("level", filters.level), ("tag", filters.tag))
            if value is not None]
        clauses = [(Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in selected]
        clauses += [(Occur.Must, self._any_field(words)) for words in wanted]
        clauses += [(Occur.MustNot, self._any_field(words)) for text in parsed.excluded
                    if (words := self._analyzer.analyze(searched(text)))]
        return tantivy.Query.boolean_query(clauses)

    def _facets(self, searcher: tantivy.Searcher, query: tantivy.Query) -> Facets:
        aggs = {name: {"terms": {"field": name, "size": size}}
                for name, size in FACET_SIZES.items()}
        result = searcher.aggregate(query, aggs)
        return Facets(**{name: [FacetCount(value=str(b["key"]), count=int(b["doc_count"]))
                                for b in result.get(name, {}).get("buckets", [])]
                         for name in FACET_SIZES})

    def _by_key(self, searcher: tantivy.Searcher, query: tantivy.Query, limit: int,
                after: Position | None, depth: int) -> tuple[int, list[Scored], int]:
        """A ranking where every hit scores the same (no words asked for), in order of key."""
        result = searcher.search(query, depth + limit, count=True, order_by_field="key",
                                 order=tantivy.Order.Asc)
        keys = [str(k) for k, _ in result.hits]
        skipped = 0 if after is None else bisect.bisect_right(keys, after[1])
        page = [(0.0, a) for _, a in result.hits[skipped:skipped + limit]]
        return skipped, page, int(result.count)  # type: ignore[attr-defined]

    def _by_score(self, searcher: tantivy.Searcher, query: tantivy.Query, limit: int,
                  after: Position | None, depth: int) -> tuple[int, list[Scored], int]:
        """The hits best first, ties in order of key: how many rank at or above `after` (where
        that hit scores now, when it still matches), and the `limit` that follow."""
        result = searcher.search(query, depth + limit, count=True)
        total = int(result.count)  # type: ignore[attr-defined]  # (missing from the stub)
        if after is not None:
            that = tantivy.Query.const_score_query(self._term("key", after[1]), 0.0)
            at = searcher.search(tantivy.Query.boolean_query(
                [(Occur.Must, query), (Occur.Must, that)]), 1).hits
            after = (at[0][0], after[1]) if at else after

        def key(address: tantivy.DocAddress) -> str:
            return str(searcher.doc(address).get_first("key"))

        skipped, page = 0, list[Scored]()
        for score, group in groupby(result.hits, key=itemgetter(0)):
            if len(page) >= limit:
                break
            addresses = [a for _, a in group]
            if after is not None and score > after[0]:
                skipped += len(addresses)
                continue
            if len(addresses) > 1 or (after is not None and score == after[0]):
                keyed = sorted(((key(a), a) for a in addresses), key=itemgetter(0))
                if after is not None and score == after[0]:
                    kept = [(k, a) for k, a in keyed if k > after[1]]
                    skipped, keyed = skipped + len(keyed) - len(kept), kept
                addresses = [a for _, a in keyed]
            page += [(score, a) for a in addresses]
        return skipped, page[:limit], total

    def _search(self, tenant: str, parsed: ParsedQuery, filters: Filters, limit: int,
                after: Position | None, depth: int) -> Ranked:
        wanted = self._wanted(parsed)
        query = self._query(tenant, wanted, parsed, filters)
        index = self._tenant(tenant)
        if index is None:
            return Ranked(Found(hits=[], total=0, facets=Facets()), None)
        searcher = index.searcher()
        rank = self._by_score if wanted else self._by_key
        skipped, page, total = rank(searcher, query, limit, after, depth)
        if skipped >= depth:
            page = []  # past the last page a search gives
        # the words asked for, never those left out, are the ones to mark
        marked = tantivy.Query.boolean_query(
            [(Occur.Must, self._any_field(words)) for words in wanted])
        snippets = Snippets(searcher, marked, self.schema, "body", wanted, self._analyzer,
                            self._tokens)
        hits: list[Hit] = []
        last: Position | None = None
        for score, address in page:  # the score itself is not shown
            doc = searcher.doc(address)
            last = (score, str(doc.get_first("key")))
            text, ranges = snippets.of(bytes(doc.get_first("shown_body") or b"").decode())
            hits.append(Hit(
                kind=doc.get_first("kind"), id=doc.get_first("id"),
                course_id=doc.get_first("course_id"),
                title=bytes(doc.get_first("shown_title") or b"").decode(),
                snippet=text, highlights=ranges,
                language=doc.get_first("language"), level=doc.get_first("level"),
                tags=[str(t) for t in doc.get_all("tag")]))
        following = skipped + len(hits)
        more = following < total and following < depth
        return Ranked(Found(hits=hits, total=total, facets=self._facets(searcher, query)),
                      last if more else None)

    async def search(self, tenant: str, query: ParsedQuery, filters: Filters, *,
                     limit: int, after: Position | None, depth: int) -> Ranked:
        return await asyncio.to_thread(_disk_told, self._search, tenant, query, filters, limit,
                                       after, depth)

    async def close(self) -> None:
        async with self._lock:  # after the write under way, whose thread is awaited to its end
            with self._opening:
                self._closed = True
                self._open.clear()
            self._release()

"""The search index on tantivy: a directory under the data dir (or memory, for tests).

Why tantivy: BM25 ranking over several weighted fields, phrase queries, term aggregations for the
facet counts and snippets with highlights, all in a Rust library embedded in this process (the
`tantivy` wheel): queries take about a millisecond, and there is no server to run, secure or keep
in step. MongoDB text indexes do not exist on FerretDB, and a search server would be one more
store to operate.

One writer per directory (tantivy holds a lock file), so one process per directory. Writes are
serialised and committed before they return; queries run on a thread beside them.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import tantivy

from bloop.platform.content.search.model import (
    FacetCount,
    Facets,
    Filters,
    Found,
    Hit,
    SearchDoc,
    Versions,
)
from bloop.platform.content.search.query import ParsedQuery, QuerySyntaxError
from bloop.platform.content.search.settings import INDEX_META as META

SCHEMA_VERSION = 1
ANALYZER = "bloop_text"
# How much each field's BM25 score counts: a word in the title says more than one in the text.
BOOSTS = {"title": 3.0, "tags_text": 2.0, "body": 1.0}
SNIPPET_CHARS = 200
FACET_SIZES = {"language": 50, "level": 10, "tag": 50}
Occur = tantivy.Occur


def analyzer() -> tantivy.TextAnalyzer:
    """Words split on anything but letters and digits, lowercased, accents folded (`café`
    finds `cafe`); no stemming, since courses come in many languages."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .build())


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    for name in ("key", "kind", "id", "course_id"):
        b.add_text_field(name, stored=True, tokenizer_name="raw")
    b.add_text_field("tenant", tokenizer_name="raw")
    b.add_text_field("title", stored=True, tokenizer_name=ANALYZER)
    b.add_text_field("body", stored=True, tokenizer_name=ANALYZER)
    b.add_text_field("tags_text", tokenizer_name=ANALYZER)
    for name in ("language", "level", "tag"):
        b.add_text_field(name, stored=True, tokenizer_name="raw", fast=True)
    b.add_integer_field("course_version", stored=True)
    b.add_integer_field("lesson_version", stored=True)
    return b.build()


def _char_range(fragment: bytes, start: int, end: int) -> tuple[int, int]:
    """tantivy's byte offsets as character offsets."""
    before = len(fragment[:start].decode())
    return before, before + len(fragment[start:end].decode())


def _lead(text: str) -> str:
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    return text[:cut if cut > 0 else SNIPPET_CHARS] + " …"


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


def in_use(directory: Path) -> bool:
    """Whether another process holds the index in `directory` (its writer's lock)."""
    if not (directory / "meta.json").exists():
        return False
    try:
        writer = tantivy.Index.open(str(directory)).writer(heap_size=15_000_000, num_threads=1)
    except ValueError as exc:
        return "LockBusy" in str(exc)
    writer.wait_merging_threads()  # gives the lock back
    return False


class TantivyIndex:
    def __init__(self, directory: Path | None = None, *, writer_heap_mb: int = 32) -> None:
        """An index in `directory` (created, or opened when it holds one), or in memory."""
        self.schema = _schema()
        self._analyzer = analyzer()
        self._meta_path = directory / META if directory is not None else None
        self._meta = self._open_meta(directory)
        self._index = tantivy.Index(self.schema, path=None if directory is None else str(directory),
                                    reuse=True)
        self._index.register_tokenizer(ANALYZER, self._analyzer)
        self._writer: tantivy.IndexWriter | None = self._index.writer(
            heap_size=writer_heap_mb * 1_000_000, num_threads=1)
        self._lock = asyncio.Lock()

    # -- meta: the index's id and when it was last built from the store ----------------------
    def _open_meta(self, directory: Path | None) -> dict[str, Any]:
        fresh: dict[str, Any] = {"schema": SCHEMA_VERSION, "index_id": uuid.uuid4().hex,
                                 "built_at": None}
        if directory is None:
            return fresh
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / META
        if path.exists():
            meta: dict[str, Any] = json.loads(path.read_text())
            if meta.get("schema") == SCHEMA_VERSION:
                return meta
            for child in directory.iterdir():  # an index of an older layout: start again
                if child.is_file():
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

    # -- writes --------------------------------------------------------------------------------
    def _writer_or_fail(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise RuntimeError("the search index is closed")
        return self._writer

    def _document(self, doc: SearchDoc) -> tantivy.Document:
        d = tantivy.Document(key=doc.key, kind=doc.kind, id=doc.id, course_id=doc.course_id,
                             tenant=doc.tenant, title=doc.title, body=doc.body,
                             tags_text=" ".join(doc.tags), language=doc.language,
                             level=doc.level, course_version=doc.course_version,
                             lesson_version=doc.lesson_version)
        for tag in doc.tags:
            d.add_text("tag", tag)
        return d

    def _apply(self, deletes: Sequence[str], docs: Sequence[SearchDoc]) -> None:
        writer = self._writer_or_fail()
        try:
            for key in [*deletes, *(d.key for d in docs)]:
                writer.delete_documents_by_term("key", key)
            for doc in docs:
                writer.add_document(self._document(doc))
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        self._index.reload()

    async def write(self, docs: Sequence[SearchDoc]) -> None:
        if docs:
            async with self._lock:
                await _to_the_end(self._apply, (), docs)

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            async with self._lock:
                await _to_the_end(self._apply, keys, ())

    # -- reads ---------------------------------------------------------------------------------
    def _term(self, field: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, field, value)

    def _versions(self, keys: Sequence[str]) -> dict[str, Versions]:
        searcher = self._index.searcher()
        found: dict[str, Versions] = {}
        for key in keys:
            hits = searcher.search(self._term("key", key), 1).hits
            if hits:
                doc = searcher.doc(hits[0][1])
                found[key] = (int(doc.get_first("course_version") or 0),
                              int(doc.get_first("lesson_version") or 0))
        return found

    async def versions(self, keys: Sequence[str]) -> dict[str, Versions]:
        return await asyncio.to_thread(self._versions, keys)

    def _count(self, tenant: str | None) -> int:
        query = tantivy.Query.all_query() if tenant is None else self._term("tenant", tenant)
        result = self._index.searcher().search(query, 1, count=True)
        return int(result.count)  # type: ignore[attr-defined]  # (missing from the stub)

    async def count(self, tenant: str | None = None) -> int:
        return await asyncio.to_thread(self._count, tenant)

    def _any_field(self, words: list[str]) -> tantivy.Query:
        """`words` (analysed) in the title, tags or text: one word as a term, several as a
        phrase, each field's score weighted by its boost."""
        def one(field: str) -> tantivy.Query:
            q = (self._term(field, words[0]) if len(words) == 1
                 else tantivy.Query.phrase_query(self.schema, field, list(words)))
            return tantivy.Query.boost_query(q, BOOSTS[field])

        return tantivy.Query.boolean_query([(Occur.Should, one(f)) for f in BOOSTS])

    def _query(self, tenant: str, parsed: ParsedQuery, filters: Filters) -> tantivy.Query:
        # Filters select without scoring, so the score is the text's relevance alone.
        selected = [self._term("tenant", tenant)] + [
            self._term(name, value) for name, value in (
                ("language", filters.language), ("level", filters.level), ("tag", filters.tag))
            if value is not None]
        clauses = [(Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in selected]
        wanted = [words for text in (*parsed.words, *parsed.phrases)
                  if (words := self._analyzer.analyze(text))]
        if (parsed.words or parsed.phrases) and not wanted:
            raise QuerySyntaxError("the query has no words to search for")
        clauses += [(Occur.Must, self._any_field(words)) for words in wanted]
        clauses += [(Occur.MustNot, self._any_field(words)) for text in parsed.excluded
                    if (words := self._analyzer.analyze(text))]
        return tantivy.Query.boolean_query(clauses)

    def _facets(self, searcher: tantivy.Searcher, query: tantivy.Query) -> Facets:
        aggs = {name: {"terms": {"field": name, "size": size}}
                for name, size in FACET_SIZES.items()}
        result = searcher.aggregate(query, aggs)
        return Facets(**{name: [FacetCount(value=str(b["key"]), count=int(b["doc_count"]))
                                for b in result.get(name, {}).get("buckets", [])]
                         for name in FACET_SIZES})

    def _search(self, tenant: str, parsed: ParsedQuery, filters: Filters, limit: int,
                offset: int) -> Found:
        query = self._query(tenant, parsed, filters)
        searcher = self._index.searcher()
        result = searcher.search(query, limit, count=True, offset=offset)
        snippets = tantivy.SnippetGenerator.create(searcher, query, self.schema, "body")
        snippets.set_max_num_chars(SNIPPET_CHARS)
        hits: list[Hit] = []
        for score, address in result.hits:
            doc = searcher.doc(address)
            snippet = snippets.snippet_from_doc(doc)
            fragment = snippet.fragment().encode()
            ranges = [_char_range(fragment, r.start, r.end) for r in snippet.highlighted()]
            text = fragment.decode() if ranges else _lead(str(doc.get_first("body") or ""))
            hits.append(Hit(
                kind=doc.get_first("kind"), id=doc.get_first("id"),
                course_id=doc.get_first("course_id"), title=doc.get_first("title"),
                snippet=text, highlights=ranges, score=round(float(score), 4),
                language=doc.get_first("language"), level=doc.get_first("level"),
                tags=[str(t) for t in doc.get_all("tag")]))
        total = int(result.count)  # type: ignore[attr-defined]  # (missing from the stub)
        return Found(hits=hits, total=total, facets=self._facets(searcher, query))

    async def search(self, tenant: str, query: ParsedQuery, filters: Filters, *,
                     limit: int, offset: int) -> Found:
        return await asyncio.to_thread(self._search, tenant, query, filters, limit, offset)

    async def close(self) -> None:
        async with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                await asyncio.to_thread(writer.wait_merging_threads)

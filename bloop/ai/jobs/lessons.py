"""Where the AI service reads a lesson: never content's store, always content's public surface.
In one process with content, its service object, asked as the caller; otherwise content's HTTP
API, forwarding the caller's credentials. Either way the caller sees exactly what content lets
them see: a course's authors its draft, everyone else what was last published."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from bloop.ai.jobs.ports import NO_RIGHTS, LessonRights, LessonSource
from bloop.ai.text.model import LessonText
from bloop.platform.content.model import MAX_LESSON_IDS, Lesson, lesson_prose
from bloop.platform.content.service import ContentService
from bloop.platform.kit import peers
from bloop.platform.kit.auth import STAFF, Principal
from bloop.platform.kit.errors import NotFound, Problem, StoreUnavailable


def lesson_text(lesson: dict[str, Any], course_language: str | None = None) -> LessonText:
    """A lesson as content shows it (its JSON) reduced to what the generators read: the text of
    its markdown blocks (quizzes and media are not narrated), in the lesson's language, which is
    its course's unless it names one; and the AI jobs whose audio and video blocks it shows."""
    blocks = [b for b in lesson.get("blocks", []) if isinstance(b, dict)]
    shows_ai: dict[str, list[str]] = {}
    for block in blocks:
        made_by = block.get("made_by_ai")
        if block.get("type") in ("audio", "video") and isinstance(made_by, dict):
            shows_ai.setdefault(str(made_by.get("kind")), []).append(str(made_by.get("job")))
    return LessonText(id=str(lesson["id"]), version=int(lesson["version"]),
                      course=str(lesson.get("course", "")), title=str(lesson["title"]),
                      text=lesson_prose(b.get("markdown", "") for b in blocks
                                        if b.get("type") == "markdown"),
                      concepts=list(lesson.get("teaches", [])),
                      language=str(lesson.get("language") or course_language or "en"),
                      shows_ai=shows_ai)


class InProcessLessons:
    """Content's service object, when this process runs content."""

    def __init__(self, content: ContentService) -> None:
        self.content = content

    async def lesson(self, tenant: str, lesson_id: str, caller: Principal,
                     credentials: Mapping[str, str]) -> LessonText:
        draft = (await self.content.draft_for(tenant, lesson_id, caller)
                 if caller.has_any(STAFF) else None)
        found: Lesson = draft or await self.content.lesson(tenant, lesson_id, drafts=False)
        course = None if found.language else await self.content.course(tenant, found.course)
        return lesson_text(found.model_dump(mode="json"), course.language if course else None)

    async def rights(self, tenant: str, lesson_ids: Collection[str], caller: Principal,
                     credentials: Mapping[str, str]) -> dict[str, LessonRights]:
        found = await self.content.lesson_access(tenant, list(lesson_ids), caller)
        return {i: LessonRights(found[i].version, found[i].may_edit) if i in found
                else NO_RIGHTS for i in lesson_ids}


class HttpLessons:
    """Content's REST API at `base_url` (`GET /v1/tenants/{tenant}/lessons/{id}`, and the
    lesson's course when the lesson takes its language from it; `…/lesson-access` for what
    the caller may do with many lessons at once)."""

    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None,
                 timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    async def lesson(self, tenant: str, lesson_id: str, caller: Principal,
                     credentials: Mapping[str, str]) -> LessonText:
        base = f"{self.base_url}/v1/tenants/{tenant}"
        lesson = await self._get(f"{base}/lessons/{lesson_id}", credentials,
                                 f"no lesson {lesson_id!r} in tenant {tenant!r}")
        course = None
        if not lesson.get("language"):
            course = await self._get(f"{base}/courses/{lesson.get('course', '')}", credentials,
                                     f"no course of the lesson {lesson_id!r}")
        return lesson_text(lesson, str(course.get("language") or "") if course else None)

    async def rights(self, tenant: str, lesson_ids: Collection[str], caller: Principal,
                     credentials: Mapping[str, str]) -> dict[str, LessonRights]:
        """One call for up to MAX_LESSON_IDS lessons, the most content answers at once."""
        wanted = list(dict.fromkeys(lesson_ids))
        rights = dict.fromkeys(wanted, NO_RIGHTS)
        for start in range(0, len(wanted), MAX_LESSON_IDS):
            ids = quote(",".join(wanted[start:start + MAX_LESSON_IDS]), safe=",")
            r = await peers.get(self.client, "content",
                                f"{self.base_url}/v1/tenants/{tenant}/lesson-access?ids={ids}",
                                credentials)
            if r.status_code in (401, 403):
                return dict.fromkeys(wanted, NO_RIGHTS)
            if r.status_code != 200:
                raise StoreUnavailable("content", f"HTTP {r.status_code} for lesson-access")
            for item in r.json()["items"]:
                if item["id"] in rights:
                    rights[item["id"]] = LessonRights(int(item["version"]),
                                                      bool(item["may_edit"]))
        return rights

    async def _get(self, url: str, headers: Mapping[str, str], missing: str) -> dict[str, Any]:
        r = await peers.get(self.client, "content", url, headers)
        if r.status_code == 404:
            raise NotFound(missing)
        if r.status_code in (401, 403):
            raise Problem("content refused to show this lesson to the caller", status=403,
                          code="content_forbidden")
        body: dict[str, Any] = r.json()
        return body

    async def close(self) -> None:
        await self.client.aclose()


class ContentUnreachable:
    """Where a process that neither runs content nor knows its address reads lessons: every
    read is 503, and only a read that needs content fails."""

    def _refused(self) -> StoreUnavailable:
        return StoreUnavailable("content", "this process does not run content; set "
                                           "BLOOP_AI_CONTENT_URL")

    async def lesson(self, tenant: str, lesson_id: str, caller: Principal,
                     credentials: Mapping[str, str]) -> LessonText:
        raise self._refused()

    async def rights(self, tenant: str, lesson_ids: Collection[str], caller: Principal,
                     credentials: Mapping[str, str]) -> dict[str, LessonRights]:
        raise self._refused()


def lesson_source(content: ContentService | None, remote: LessonSource | None) -> LessonSource:
    """Content's service object (`content`) when this process runs content, else its HTTP API
    (`remote`, the AI service's `lessons`)."""
    if content is not None:
        return InProcessLessons(content)
    return remote if remote is not None else ContentUnreachable()

"""The landing page at `/`: the demo tenant's published courses and where to go next.

Server-rendered, self-contained HTML; every value from the store is escaped."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from html import escape
from shlex import quote as quote_arg
from urllib.parse import quote, urlencode

from bloop.platform.content.model import CourseOutline, LessonOutline
from bloop.platform.demo.data import Person
from bloop.platform.kit.auth import TOKEN_URL
from bloop.platform.kit.favicon import DATA_URL as ICON

COURSES_A_PAGE = 20

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:#1d2330;background:#f6f7fb}
header{background:#1f3a8a;color:#fff;padding:2.2rem 1.5rem}
header h1{margin:0;font-size:1.9rem}
header p{margin:.4rem 0 0;opacity:.85}
h1,h2,p,li{overflow-wrap:anywhere}
main{max-width:52rem;margin:0 auto;padding:1.5rem}
nav a{margin-right:1rem;white-space:nowrap;display:inline-block}
nav.pages{margin:1.5rem 0}
a{color:#1f4fd1}
.course{background:#fff;border:1px solid #dde2ee;border-radius:10px;padding:1.2rem 1.4rem;
  margin:1.2rem 0}
.course h2{margin:0 0 .3rem;font-size:1.35rem}
.meta{color:#5b6477;font-size:.9rem}
ol{padding-left:1.3rem}
li{margin:.45rem 0}
.tag{display:inline-block;background:#eef1fb;color:#33406a;border-radius:999px;
  padding:0 .55rem;font-size:.8rem;margin-right:.25rem}
.tag.req{background:#fdf1e4;color:#7a4a12}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
code{background:#eef1fb;padding:.05rem .3rem;border-radius:4px}
header code{background:rgba(255,255,255,.16);color:#fff}
.empty{background:#fff;border:1px dashed #c5cbe0;border-radius:10px;padding:1.2rem}
.signin{background:#fff;border:1px solid #dde2ee;border-left:4px solid #1f3a8a;
  border-radius:10px;padding:1rem 1.4rem;margin:1.2rem 0}
.signin h2{margin:0 0 .3rem;font-size:1.15rem}
pre{background:#eef1fb;border-radius:6px;padding:.6rem .8rem;overflow-x:auto;font-size:.85rem}
pre code{background:none;padding:0}
footer{color:#5b6477;font-size:.9rem;margin-top:2rem}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _direction(text: str) -> str:
    """The direction its first strong letter gives `text` (what `dir="auto"` finds, which a
    list of isolated titles cannot: each `<bdi>` is skipped)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return "ltr"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def render(tenant: str, courses: Sequence[CourseOutline], *, with_users: bool = True,
           accounts: Sequence[Person] = (), origin: str = "http://127.0.0.1:8000",
           paged: tuple[bool, str | None] = (False, None)) -> str:
    """`accounts`: demo people whose passwords the page may show, to sign in with at `origin`.
    `paged`: whether pages come before this one, and the cursor of the one after it."""
    base = ("v1", "tenants", tenant)
    links = [("API docs", "/docs"), ("GraphQL", "/graphql"), ("Courses (JSON)", _path(*base, "courses")),
             ("Concepts (JSON)", _path(*base, "concepts"))]
    if with_users:
        links.append(("People (JSON)", _path(*base, "users")))
    links.append(("Readiness", "/readyz"))
    nav = "".join(f'<a href="{_e(href)}">{_e(label)}</a>' for label, href in links)

    later, after = paged
    title = "Bloop: more courses" if later else "Bloop"
    if courses or later:
        body = "".join(_course(tenant, c) for c in courses) + _pages(later, after)
    else:
        body = ('<p class="empty">No published courses yet. Create one with '
                f'<code>POST {_e(_path(*base, "courses"))}</code>, add lessons, and publish it.'
                "</p>")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<link rel="icon" href="{_e(ICON)}">
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Bloop</h1>
<p>An open-source learning platform. This is the <code>{_e(tenant)}</code> tenant.</p>
</header>
<main>
<nav aria-label="Site">{nav}</nav>
{_sign_in(tenant, accounts, origin)}{body}
<footer>Each course and lesson above links to its JSON resource, which needs a bearer token; the
whole API is described at <a href="/docs">/docs</a>.</footer>
</main>
</body>
</html>
"""


def _pages(later: bool, after: str | None) -> str:
    links = ['<a href="/">First courses</a>'] if later else []
    if after is not None:
        links.append(f'<a href="/?{urlencode({"after": after})}" rel="next">More courses</a>')
    return (f'<nav class="pages" aria-label="Pages">{"".join(links)}</nav>\n' if links
            else "")


def _course(tenant: str, course: CourseOutline) -> str:
    href = _path("v1", "tenants", tenant, "courses", course.id)
    minutes = sum(lesson.estimated_minutes for lesson in course.lessons)
    tags = "".join(f'<span class="tag">{_e(t)}</span>' for t in course.tags)
    lessons = "".join(_lesson(tenant, lesson, course.language) for lesson in course.lessons)
    summary = (f'<p lang="{_e(course.language)}" dir="auto">{_e(course.summary)}</p>'
               if course.summary else "")
    return f"""<section class="course">
<h2 lang="{_e(course.language)}" dir="auto"><a href="{_e(href)}">{_e(course.title)}</a></h2>
<div class="meta">{_e(course.level)} &middot; {_e(course.language)} &middot;
{_count(len(course.lessons), 'lesson')} &middot; about {_count(minutes, 'minute')} &middot;
version {course.version}
{tags}</div>
{summary}
<ol dir="{_direction(course.title)}">{lessons}</ol>
</section>
"""


def _lesson(tenant: str, lesson: LessonOutline, course_language: str) -> str:
    href = _path("v1", "tenants", tenant, "lessons", lesson.id)
    teaches = "".join(f'<span class="tag"><span class="sr">teaches </span>{_e(c)}</span>'
                      for c in lesson.teaches)
    requires = "".join(f'<span class="tag req">needs {_e(c)}</span>' for c in lesson.requires)
    language = lesson.language or course_language
    return (f'<li><a href="{_e(href)}"><bdi lang="{_e(language)}">{_e(lesson.title)}</bdi></a> '
            f'<bdi class="meta">{lesson.estimated_minutes} min</bdi><br>'
            f"{teaches}{requires}</li>")


def _sign_in(tenant: str, accounts: Sequence[Person], origin: str) -> str:
    if not accounts:
        return ""
    people = "".join(
        f"<li>{_e(p.display_name)} ({_e(', '.join(p.roles))}): <code>{_e(p.email)}</code>, "
        f"password <code>{_e(p.password)}</code></li>" for p in accounts)
    first = accounts[0]
    command = (f"curl -s -X POST {quote_arg(origin + TOKEN_URL)} \\\n"
               f"     -d grant_type=password -d {quote_arg('tenant=' + tenant)} \\\n"
               f"     -d {quote_arg('username=' + first.email)}"
               f" -d {quote_arg('password=' + first.password)}")
    return f"""<section class="signin">
<h2>Sign in to try the API</h2>
<p>The links on this page return JSON to a signed-in caller. The demo people (their passwords
are public on purpose):</p>
<ul>{people}</ul>
<p>Get a token with <b>Authorize</b> in <a href="/docs">/docs</a>, or from a shell:</p>
<pre><code>{_e(command)}</code></pre>
<p>and send its <code>access_token</code> as <code>Authorization: Bearer &lt;token&gt;</code>
(GraphiQL, at <a href="/graphql">/graphql</a>, signs in by itself).</p>
</section>
"""

"""What a GraphQL request is counted and logged as beside its HTTP status, which is 200 whatever
its fields did: its outcome, the `code` of each of its errors and its `operationName`, each held
to a bounded set of values (they are metric labels and access log fields)."""

from __future__ import annotations

import re
from typing import Literal

from graphql.error import GraphQLError
from strawberry.types import ExecutionResult

from bloop.platform.kit.metrics import Metrics

Outcome = Literal["ok", "partial", "failed"]
CODES = frozenset({
    # this layer's own: errors in the query, refusals by the limits, what resolvers fail with
    "validation_failed", "query_too_long", "too_many_selections", "query_too_repetitive",
    "too_many_aliases", "query_too_costly", "query_too_large", "internal_error",
    "store_unavailable", "invalid_text",
    # what the reads and writes behind the fields refuse, as their HTTP twins do
    "unauthenticated", "forbidden", "wrong_tenant", "missing_role", "insufficient_scope",
    "not_a_person", "not_found", "bad_cursor", "bad_request",
    # what the writes refuse
    "too_many_writes", "conflict", "busy", "stale_version", "course_archived", "not_enrolled",
    "wrong_question", "not_in_deck", "already_reviewed", "bad_rating", "too_few_reviews",
    "invalid_answer", "cycle", "too_few_answers", "degenerate_fit", "version_required",
    "course_exists", "course_published", "course_not_published", "course_empty",
    "draft_changed", "unpublished_changes", "no_such_version", "not_the_owner",
    "not_an_author", "module_exists", "too_many_modules", "unknown_module", "unknown_concepts",
    "unknown_media", "wrong_media_kind", "not_captions", "lesson_order_mismatch",
    "concept_exists",
    # what AI jobs refuse
    "lesson_gone", "lesson_empty", "lesson_required", "nothing_to_narrate", "prompt_too_long",
    "prompt_not_supported", "language_not_supported", "llm_required", "not_available",
    "ai_budget_exhausted", "ai_quota_exceeded", "idempotency_key_reused", "job_finished",
    "content_forbidden", "voice_unavailable",
})
OTHER = "other"
"""The code counted for an error whose code is not in `CODES`, or that has none."""
NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9_]+")


def outcome(result: ExecutionResult) -> Outcome:
    """ok: no errors; failed: no data (the query was refused or invalid, so nothing ran), or
    every top-level field null by an error of its own; partial: any other answer with errors
    (some field kept its data, or was null without an error)."""
    if not result.errors:
        return "ok"
    failed = {e.path[0] for e in result.errors if e.path}
    if not result.data or all(value is None and key in failed
                              for key, value in result.data.items()):
        return "failed"
    return "partial"


def code(error: GraphQLError) -> str:
    found = (error.extensions or {}).get("code")
    return found if isinstance(found, str) and found in CODES else OTHER


def operation_name(sent: str | None) -> str | None:
    """The `operationName` a request sent, cut to `NAME_LENGTH` characters; None when it sent
    none or one that is no GraphQL name."""
    return sent[:NAME_LENGTH] if sent and _NAME.fullmatch(sent) else None


def record(metrics: Metrics, result: ExecutionResult) -> Outcome:
    """Counts `result`'s errors by code and its outcome; the outcome."""
    for error in result.errors or ():
        metrics.graphql_errors.labels(code(error)).inc()
    found = outcome(result)
    metrics.graphql_operations.labels(found).inc()
    return found


def refused(metrics: Metrics, code_name: str) -> Outcome:
    """Counts a request refused before any operation ran (a body that is no GraphQL request, an
    `operationName` its document lacks, a mutation over GET), with the `code` it is answered."""
    metrics.graphql_errors.labels(code_name if code_name in CODES else OTHER).inc()
    metrics.graphql_operations.labels("failed").inc()
    return "failed"

"""How external sign-in refuses: problems (RFC 9457) with codes of their own."""

from __future__ import annotations

from bloop.platform.kit.errors import Problem


def refuse(detail: str, code: str, status: int = 400) -> Problem:
    return Problem(detail, status=status, code=code)


def id_token_invalid(detail: str) -> Problem:
    return refuse(f"the provider's ID token was refused: {detail}", "oidc_id_token_invalid", 401)


def unreachable(detail: str) -> Problem:
    return refuse(f"the identity provider could not be reached or answered badly: {detail}",
                  "oidc_provider_unavailable", 502)

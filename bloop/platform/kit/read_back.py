"""The validation context of a store reading back what it kept.

A record was checked when it was written, perhaps under an older rule. Read back with `STORED`,
the validators written in Python (an address, an email, a signup domain, math, lesson rules)
keep what is there, so a record stays readable and can be corrected, and nothing is checked
twice; types, patterns and lengths are still checked. Whatever would use a value in a way its
rule guards (fetching an address) checks it again."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationInfo

STORED: dict[str, Any] = {"stored": True}


def read_back(info: ValidationInfo) -> bool:
    """Whether the value is being read back from a store (validated with `STORED`)."""
    return isinstance(info.context, dict) and info.context.get("stored") is True

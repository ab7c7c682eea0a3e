"""Text that may not be blank.

A field typed `StringConstraints(strip_whitespace=True, min_length=1)` refuses "   ", but its JSON
Schema (`minLength: 1`) accepts it. `NonBlank` adds the pattern that says it: some character
that pydantic's strip (Unicode White_Space, as Rust's `trim`) does not take away."""

from __future__ import annotations

from pydantic import Field

STRIPPED = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NON_BLANK = f"[^{STRIPPED}]"

NonBlank = Field(json_schema_extra={"pattern": NON_BLANK})
"""Put after `StringConstraints(strip_whitespace=True, min_length=1, ...)`."""

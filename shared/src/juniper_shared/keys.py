"""Document ids made of several values, written so that no values can spell another's id."""

from __future__ import annotations

import json


def compound_id(*parts: str) -> str:
    """The parts as a JSON array: quoting and escaping keep every boundary, so a separator inside
    a value (a seller id holding ":") cannot make one tenant's id equal to another's."""
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))

"""Text from the public edge (the Arena, the serve endpoint), made safe for a tokenizer and a page.

JSON lets a caller send a lone UTF-16 surrogate (`"\\ud800"`): Python keeps it in the str, and a
fast tokenizer raises on it (for the whole batch it is in). NUL and other C0 controls, and the
bidi overrides that can make one voter's reply read differently on another's screen, are
dropped; line breaks and tabs stay. NFC so that "é" typed two ways is one text.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import UserError

# C0/C1 controls except \t and \n; bidi embeddings/overrides/isolates; BOM/zero-width no-break.
_DROP = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_user_text(text) -> str:
    """The text as the models will see it: lone surrogates -> U+FFFD, a surrogate pair joined,
    CRLF -> LF, controls and bidi overrides dropped, NFC. Raises UserError for a non-string."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise UserError(f"Expected text, got {type(text).__name__}: send the prompt as a string.")
    # surrogatepass keeps pairs as their 4-byte form, so decoding joins them; lone ones are replaced
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _DROP.sub("", text))

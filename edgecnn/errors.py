"""The one exception type for mistakes a user can make.

Bad recipes, missing files, unknown names and wrong shapes raise :class:`EdgeCNNError` with a
message that names the field or file and what would be valid. The CLI prints the message without
a traceback and exits with code 2; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeCNNError(Exception):
    """An error caused by the user's input, reported as one clear message (exit code 2)."""


def closest(name: str, options: list[str], n: int = 3) -> str:
    """A 'did you mean' hint listing the nearest valid names, or all of them when few."""
    import difflib

    near = difflib.get_close_matches(name, options, n=n, cutoff=0.5)
    if near:
        return "did you mean " + ", ".join(near) + "?"
    if len(options) <= 12:
        return "valid: " + ", ".join(options)
    return f"see `edgecnn models` for the {len(options)} valid names"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (cut to ``limit``), or its type's name: what a
    one-line error quotes of a library's or a user's exception."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__

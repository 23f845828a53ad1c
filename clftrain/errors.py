"""The one exception type for user mistakes.

A `UserError` is something the user can fix (a bad config, a missing file, a
device that is not there). The CLI prints its message and exits with code 2;
anything else escaping is a bug and exits with code 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem in the user's input: message says what, where and how to fix it."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a choice is close to `word`, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

"""The failures the tap anticipates, and the redaction that keeps the API key out of them.

Every anticipated failure is a :class:`KaleyraError`: its message is one line that
names what went wrong and what to do, and the command line prints it as the run's
last line instead of a traceback. Messages often quote the server's own words,
and a server may echo the API key back, so every message is redacted here, once,
before anything else can shorten or print it.
"""

from __future__ import annotations

import string

_FRAGMENT = 8
"""Shortest piece of a key that is redacted on its own (and that key scans flag)."""

_SECRETS: set[str] = set()
"""Secrets in use, the API key and any ``phoneno_hash_key`` (registered by their users):
no error message or log line may contain any piece of one."""


def register_secret(secret: str) -> None:
    """Redact ``secret``, and any piece of it of 8 characters or more, from now on."""
    if secret:
        _SECRETS.add(secret)


def longest_secret() -> int:
    """Length of the longest key in use: how far past a cut a key could reach."""
    return max(map(len, _SECRETS), default=0)


def redact(text: str) -> str:
    """``text`` with every secret in use, and every 8-character piece of one, as ``***``.

    Whole keys are not enough: a server may echo a key cut short, and a message
    that is later shortened may cut a key in two. Redact before any cut. Letter
    case is ignored: a host name, for one, reaches us lower-cased. Every secret
    is looked for in the original text: two secrets sharing a piece must not
    leave the rest of one behind once the other's piece is replaced.
    """
    if not _SECRETS:
        return text
    folded = text.translate(_ASCII_LOWER)
    covered = [False] * len(text)
    for secret in _SECRETS:
        _cover(folded, secret, covered)
    if not any(covered):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not covered[index]:
            out.append(char)
        elif index == 0 or not covered[index - 1]:
            out.append("***")
    return "".join(out)


def redact_cut(text: str) -> str:
    """:func:`redact` for a text that was cut off at its end, e.g. a body's first bytes.

    A key that went on past the cut leaves its first few characters at the end,
    too few to be recognised as a piece of it: the last 7 characters are dropped.
    """
    return redact(text)[: -(_FRAGMENT - 1)]


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
"""Lower-cases ASCII letters only, so that every character keeps its position."""


def _cover(folded: str, secret: str, covered: list[bool]) -> None:
    """Mark in ``covered`` every character of ``folded`` (lower-cased) in a piece of ``secret``."""
    size = min(_FRAGMENT, len(secret))
    folded_secret = secret.translate(_ASCII_LOWER)
    pieces = {folded_secret[i : i + size] for i in range(len(secret) - size + 1)}
    for start in range(len(folded) - size + 1):
        if folded[start : start + size] in pieces:
            covered[start : start + size] = [True] * size


class KaleyraError(Exception):
    """An anticipated failure; its message is one line, safe to show the user."""

    def __init__(self, message: str) -> None:
        """Keep the message, with any API key in it redacted."""
        super().__init__(redact(message))


class ConfigurationRejected(KaleyraError):
    """Kaleyra refused the request for a reason no retry or other agent will fix."""


class AgentRequestFailed(KaleyraError):
    """Kaleyra refused the request for one agent (e.g. ``400 RCS904``)."""


AGENT_ADVICE = "check that the agent number is right and registered on this account"
"""What to do when Kaleyra refuses one agent's request (an unknown agent included)."""


class UnknownAgent(AgentRequestFailed):
    """Kaleyra answered that the agent does not exist (``400 RCS904 "Agent Not Found"``).

    Its own class so that ``unknown_agents: skip`` can leave just that agent out.
    """

    def __init__(self, agent: str, answer: str) -> None:
        """Keep Kaleyra's answer (e.g. ``HTTP 400 RCS904 "Agent Not Found"``) for the warning."""
        super().__init__(
            f"agent {agent}: {answer}; {AGENT_ADVICE}, or set unknown_agents: skip to leave it out"
        )
        self.answer = redact(answer)


class RetriesExhausted(KaleyraError):
    """A transient failure outlasted the retry budget."""


class MalformedResponse(KaleyraError):
    """The answer was not the documented JSON shape, so its data can't be trusted."""


class OutputClosed(KaleyraError):
    """The reader of stdout (usually the target) went away."""


class SettingsInvalid(KaleyraError):
    """Settings failed validation, after each problem was logged on its own line."""

    def __init__(self, problems: list[str]) -> None:
        """Summarise in one line: how many problems, and the first of them."""
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} setting {noun} (listed above); first: {problems[0]}")
        self.problems = problems

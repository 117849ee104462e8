"""The user's mistakes: one error type, and the Problem a spec check reports."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, order=True)
class Problem:
    """One finding about a spec, located like a compiler's diagnostic."""

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: str = "error"

    def render(self) -> str:
        where = display_path(self.file)
        if self.line:
            where = f"{where}:{self.line}:{self.col}"
        path = f"{self.path}: " if self.path else ""
        return f"{where}: {self.severity}: {path}{printable(self.message)}"


def printable(text: str) -> str:
    """`text` on one line, control characters escaped: a value quoted from a spec cannot break a
    message into lines or send escape sequences to the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def special_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a pipe, a socket or a device (links followed): reading one may never end.
    A path that cannot be looked at is not special: the read that follows says what is wrong."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 job`, `2 jobs`; `many` for words that do not just take an s (`queries`)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def display_path(file: str) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    if not os.path.isabs(file):
        return file
    rel = os.path.relpath(file)
    return file if rel.startswith("..") else rel


class UserError(Exception):
    """Anything the user can fix: bad input, a failed job, a backend's refusal. Exit code 1."""


def read_text(path: str | os.PathLike, what: str) -> str:
    """A file the user named, as text; a missing, unreadable or non-UTF-8 file is a UserError that
    names it (`what` says what it should have been: "spec file", "YAML file")."""
    name = display_path(str(path))
    try:
        if special_file(path):
            raise UserError(f"{name}: not a regular file, not a {what}")
        with open(path, "rb") as f:  # decoded whole, so that a bad byte's position is the file's
            text = f.read().decode("utf-8")
        return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a folder, not a {what}") from None
    except (
        UnicodeDecodeError
    ) as e:  # located like a spec problem: line and column (in bytes) of the bad byte
        line, col = (
            e.object.count(b"\n", 0, e.start) + 1,
            e.start - e.object.rfind(b"\n", 0, e.start),
        )
        raise SpecError(
            [Problem(str(path), line, col, "", f"not UTF-8 text ({e.reason} at byte {e.start})")]
        ) from None
    except OSError as e:
        raise UserError(f"{name}: cannot read: {e.strerror}") from None


class SpecError(UserError):
    """A spec with errors: carries every problem found, warnings included."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

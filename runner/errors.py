"""The user's mistakes: one error type, and the Problem a spec check reports."""
from __future__ import annotations

import os
from dataclasses import dataclass


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
        return f"{where}: {self.severity}: {path}{self.message}"


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
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a folder, not a {what}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
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

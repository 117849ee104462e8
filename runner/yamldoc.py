"""YAML to plain data, remembering where every key and value came from.

PyYAML's composer gives nodes with marks; we build the data ourselves so that duplicate keys,
unsupported tags and alias bombs become Problems instead of silent surprises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem

Path = tuple  # of str keys and int indices
Mark = tuple  # (file, line, col), 1-based

MAX_NODES = 100_000
MAX_DEPTH = (
    100  # levels of nesting: deeper is a mistake or an attack, and paths cost memory per level
)
MAX_TEXT_DEPTH = 2 * MAX_DEPTH  # levels of nesting in the text: composing stops past it (_Loader)
MAX_INT_BITS = 14_000  # about 4,200 digits: Python will not print a longer integer (sys.int_info)
_STR, _INT, _FLOAT, _BOOL, _NULL = (
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")
)
_TIMESTAMP, _MERGE = "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:merge"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_CORE = "tag:yaml.org,2002:"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# A scalar hook: (text, node, path) -> value; may append Problems to the Doc.
Hook = Callable[[str, yaml.ScalarNode, Path, "Doc"], Any]


def jsonpath(path: Path) -> str:
    """`$.jobs.train.inputs['my file'][0]`: the address users see in messages."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


@dataclass
class Doc:
    """Plain data plus the position of each value (`pos`) and each mapping key (`keypos`)."""

    file: str
    data: Any = None
    pos: dict = field(default_factory=dict)
    keypos: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    includes: dict = field(default_factory=dict)  # path of an including block -> included file
    broken: set = field(
        default_factory=set
    )  # paths whose value a reported Problem left missing or None
    # path of a secret value (spec.py) -> what made it secret
    secret: dict = field(default_factory=dict)
    # the digest of data that passed the schema check, for apply to remember (validate.py)
    schema_passed: str | None = None

    def where(self, path: Path, key: bool = False) -> Mark:
        """The position of `path` (of its key when `key`), else of its nearest known parent."""
        path = tuple(path)
        if key and path in self.keypos:
            return self.keypos[path]
        while path and path not in self.pos:
            path = path[:-1]
        return self.pos.get(path, (self.file, 1, 1))

    def problem(
        self,
        path: Path,
        message: str,
        key: bool = False,
        severity: str = "error",
        at: Mark | None = None,
    ) -> None:
        file, line, col = at or self.where(path, key)
        self.problems.append(Problem(file, line, col, jsonpath(path), message, severity))


def _mark(file: str, m: yaml.Mark) -> Mark:
    return (file, m.line + 1, m.column + 1)


def compose(text: str, doc: Doc) -> yaml.Node | None:
    """The node tree of one YAML document; syntax errors become the Doc's Problems."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except _TextTooDeep as e:
        _, line, col = _mark(doc.file, e.args[0])
        doc.problems.append(
            Problem(
                doc.file, line, col, "", f"YAML nesting is too deep (more than {MAX_DEPTH} levels)"
            )
        )
        return None
    except yaml.MarkedYAMLError as e:
        m, what = _syntax(e)
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        if m and "${{" in text.splitlines()[m.line if m.line < len(text.splitlines()) else -1]:
            what += " (in { } or [ ], quote values that use ${{ }})"
        doc.problems.append(Problem(doc.file, line, col, "", f"YAML syntax: {what}"))
        return None
    except (
        yaml.reader.ReaderError
    ) as e:  # a character YAML does not allow, e.g. a control character
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        doc.problems.append(
            Problem(
                doc.file,
                line,
                col,
                "",
                f"YAML syntax: the character #x{e.character:04x} is not allowed ({e.reason})",
            )
        )
        return None
    except yaml.YAMLError as e:
        doc.problems.append(Problem(doc.file, 1, 1, "", f"YAML syntax: {e}"))
        return None
    except RecursionError:
        doc.problems.append(Problem(doc.file, 1, 1, "", "YAML nesting is too deep"))
        return None
    if node is None:
        doc.problems.append(Problem(doc.file, 1, 1, "$", "the file is empty: expected a mapping"))
    return node


class _TextTooDeep(Exception):
    """The text nests deeper than MAX_TEXT_DEPTH; args: the mark to report (see _Loader)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, stopped where the text nests more than MAX_TEXT_DEPTH levels deep.

    Past MAX_DEPTH the builder refuses the value anyway (up to MAX_TEXT_DEPTH it says where, with
    the path: built depth and text depth differ by merges and aliases), and going on costs: for
    each open '[' or '{' the scanner keeps a possible simple key and rechecks all of them at every
    token, reading up to 1,024 characters ahead (quadratic: 3,000 '[' took 1.1 s of CPU, 2 s with
    the recursion limit Hypothesis sets), and the composer recurses until Python's recursion limit.
    The problem is reported at the start of the MAX_DEPTH-th level (of '[' and '{' when the scanner
    stops first), as the builder reports it."""

    def __init__(self, text: str):
        super().__init__(text)
        self.flow_marks: list = []  # the marks of the '[' and '{' open, outermost first
        self.node_marks: list = []  # the start marks of the nodes being composed, root first

    def fetch_flow_collection_start(self, token_class):
        level = self.flow_level  # negative after an unmatched ']': the parser then fails
        if level >= 0:
            del self.flow_marks[level:]
            self.flow_marks.append(self.get_mark())
            if level >= MAX_TEXT_DEPTH:
                raise _TextTooDeep(self.flow_marks[MAX_DEPTH - 1])
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent, index):
        depth = len(self.node_marks)
        if depth > MAX_TEXT_DEPTH:
            raise _TextTooDeep(self.node_marks[MAX_DEPTH])
        self.node_marks.append(self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.node_marks.pop()


_UNCLOSED = {
    "while scanning a quoted scalar": "this quoted string is never closed",
    "while parsing a flow mapping": "this '{' is never closed by a '}'",
    "while parsing a flow sequence": "this '[' is never closed by a ']'",
}
_FLOW = {"while parsing a flow mapping": "{}", "while parsing a flow sequence": "[]"}
_PLAIN = {
    "but found another document": "a spec file holds one YAML document; a second one starts here",
    "expected <block end>, but found '<block mapping start>'": (
        "bad indentation: this line does not line up with the keys above it"
    ),
    "found character '\\t' that cannot start any token": (
        "a tab character: YAML indents with spaces only"
    ),
    "mapping values are not allowed here": (
        "mapping values are not allowed here (bad indentation, or an unquoted value containing "
        "': '?)"
    ),
}


def _syntax(e: yaml.MarkedYAMLError) -> tuple[yaml.Mark | None, str]:
    """Where a syntax error is and what it is, in the user's words rather than the parser's."""
    problem = e.problem or ""
    if (
        e.context in _UNCLOSED
        and e.context_mark
        and (
            "<stream end>" in problem
            or "unexpected end" in problem
            or "document separator" in problem
        )
    ):
        return e.context_mark, _UNCLOSED[e.context]
    if (
        e.context in _FLOW
        and e.context_mark
        and e.problem_mark
        and e.problem_mark.line > e.context_mark.line
    ):
        # _FLOW's values are two characters: the opening and the closing bracket
        (open_, close), got = (
            _FLOW[e.context],  # type: ignore[str-unpack]
            problem.rpartition(" but got ")[2],
        )
        return e.context_mark, (
            f"this '{open_}' needs ',' or '{close}' before the {got} "
            f"on line {e.problem_mark.line + 1} (a missing '{close}'?)"
        )
    what = _PLAIN.get(problem, problem or e.context or "invalid YAML")
    return e.problem_mark or e.context_mark, what.replace("'<stream end>'", "the end of the file")


def build(node: yaml.Node, doc: Doc, hook: Hook | None = None, path: Path = ()) -> Any:
    """Plain data for `node`, recording positions in `doc`; None (and a Problem) if it can't be."""
    before = len(doc.problems)
    try:
        return _Builder(doc, hook).build(node, tuple(path))
    except _TooBig:
        del doc.problems[before:]  # about values now dropped: one problem says why
        doc.problem(path, f"the document expands to more than {MAX_NODES} nodes (YAML aliases?)")
    except _TooDeep as e:
        del doc.problems[before:]
        doc.problem(e.args[0], f"YAML nesting is too deep (more than {MAX_DEPTH} levels)")
    except RecursionError:
        del doc.problems[before:]
        doc.problem(path, "YAML nesting is too deep")
    return None


def parse(text: str, file: str, hook: Hook | None = None) -> Doc:
    """Compose and build one YAML document into a Doc."""
    doc = Doc(file)
    node = compose(text, doc)
    if node is not None:
        doc.data = build(node, doc, hook)
    return doc


class _TooBig(Exception):
    pass


class _TooDeep(Exception):
    pass


class _Builder:
    def __init__(self, doc: Doc, hook: Hook | None):
        self.doc, self.hook, self.count = doc, hook, 0
        self.constructor = yaml.SafeLoader("")
        self.open: set = set()  # ids of the collection nodes being built: an alias to one recurses

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig()
        if len(path) > MAX_DEPTH:
            raise _TooDeep(path[: MAX_DEPTH + 1])
        self.doc.pos[path] = _mark(self.doc.file, node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:
            return self.recursive(path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    return self.bad_tag(node, path)
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            if node.tag != _MAP:
                return self.bad_tag(node, path)
            # composing makes scalar, sequence and mapping nodes only: this one is a mapping
            return self.mapping(node, path)  # type: ignore[arg-type]
        finally:
            self.open.discard(id(node))

    def recursive(self, path: Path) -> None:
        self.doc.problem(
            path,
            "this alias refers to an anchor that contains it: the value would contain itself",
            key=True,
        )
        self.doc.broken.add(path)
        return None

    def bad_tag(self, node: yaml.Node, path: Path) -> None:
        tag = (
            "!!" + node.tag[len(_CORE) :] if node.tag.startswith(_CORE) else node.tag
        )  # as written
        self.doc.problem(path, f"unsupported YAML tag '{tag}'")
        self.doc.broken.add(path)
        return None

    def scalar(self, node: yaml.ScalarNode, path: Path, hooked: bool = True) -> Any:
        if node.tag in (_STR, _TIMESTAMP):
            value = node.value
            return self.hook(value, node, path, self.doc) if (self.hook and hooked) else value
        if node.tag in (_INT, _FLOAT, _BOOL, _NULL):
            try:
                value = self.constructor.construct_object(node)
            except (
                ValueError,
                KeyError,
                IndexError,
            ) as e:  # `!!int x`, or more digits than Python reads
                return self.bad_value(node, path, too_large="Exceeds the limit" in str(e))
            if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
                return self.bad_value(node, path, too_large=True)
            return value
        return self.bad_tag(node, path)

    def bad_value(self, node: yaml.ScalarNode, path: Path, too_large: bool) -> None:
        text = node.value if len(node.value) <= 20 else node.value[:20] + "..."
        tag = "!!" + node.tag[len(_CORE) :]
        self.doc.problem(
            path,
            f"the number '{text}' is too large ({len(node.value)} characters)"
            if too_large
            else f"'{text}' is not a valid {tag}",
        )
        self.doc.broken.add(path)
        return None

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        out: dict = {}
        merged: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.merge(value_node, path, merged)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.problem(
                    path,
                    "mapping keys must be plain strings",
                    at=_mark(self.doc.file, key_node.start_mark),
                )
                continue
            key = self.key(key_node, path)
            if key in out:
                first = self.doc.keypos[path + (key,)][1]
                self.doc.problem(
                    path + (key,),
                    f"duplicate key '{key}' (first defined on line {first})",
                    at=_mark(self.doc.file, key_node.start_mark),
                )
                continue
            self.doc.keypos[path + (key,)] = _mark(self.doc.file, key_node.start_mark)
            out[key] = self.build(value_node, path + (key,))
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def key(self, node: yaml.ScalarNode, path: Path) -> str:
        if node.tag in (_STR, _TIMESTAMP) and self.hook:
            value = self.hook(node.value, node, path, self.doc)
            return value if isinstance(value, str) else str(value)
        return node.value  # what the user wrote: `on:` stays 'on', `1:` stays '1'

    def merge(self, node: yaml.Node, path: Path, merged: dict) -> None:
        """`<<: *base` (or a list of them): earlier keys win, explicit keys win over all."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for src in sources:
            if id(src) in self.open:
                self.recursive(path + ("<<",))
                continue
            if not isinstance(src, yaml.MappingNode):
                self.doc.problem(
                    path, "'<<' merges only mappings", at=_mark(self.doc.file, src.start_mark)
                )
                self.doc.broken.add(path)  # the keys it was meant to bring are unknown
                continue
            self.open.add(id(src))
            try:
                for key, value in self.mapping(src, path).items():
                    merged.setdefault(key, value)
            finally:
                self.open.discard(id(src))

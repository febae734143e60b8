"""Bounded YAML composition: PyYAML's event stream turned into a node graph, without recursion.

The node graph is what a YAML *composer* builds before any constructor runs: mappings,
sequences and scalars with their tags (``tag:yaml.org,2002:python/object/apply:os.system``,
``!new:torch.nn.Linear``), and nothing constructed. PyYAML's own composer
(``yaml.compose``) recurses once per nesting level (a ``RecursionError`` on deep input, and
the C extension's composer recurses in C); this one consumes the events of PyYAML's parser
(libyaml's ``CSafeLoader`` when available, an iterative state machine either way) and keeps
its own stack, so every bound is checked where the input is read:

* events (nodes and aliases) per file -- an alias is an edge to a node already built, never
  a copy, so "billion laughs" costs one edge per alias;
* nesting depth and documents per stream.

Two places where YAML loaders disagree are recorded rather than refused: an anchor defined
twice in one document (PyYAML and OmegaConf refuse the file, ruamel -- and so HyperPyYAML --
accept it and let later aliases mean the second node; aliases here follow ruamel) and, for
the analyzer, duplicate mapping keys (kept, all of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml import events

from aivet.formats import FormatError, LimitExceeded

try:  # libyaml: fast, and its parser is a state machine (no recursion)
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment,unused-ignore]

SCALAR, SEQUENCE, MAPPING = 0, 1, 2
PYTHON_TAG = "tag:yaml.org,2002:python/"


class Node:
    """One composed node. ``children`` holds sequence items, or mapping keys and values
    alternating (``k0, v0, k1, v1 ...``: duplicate keys are kept)."""

    __slots__ = ("kind", "tag", "value", "plain", "children", "line", "index")

    def __init__(self, kind: int, tag: str | None, line: int, index: int, value: str = "",
                 plain: bool = False) -> None:
        self.kind = kind
        self.tag = tag  # the explicit tag after %TAG / verbatim / %-escape expansion; None if implicit
        self.value = value
        self.plain = plain  # a plain (unquoted) scalar: implicit resolvers apply to it
        self.children: list[Node] = []
        self.line = line  # 1-based
        self.index = index  # character offset in the text

    def pairs(self) -> list[tuple[Node, Node]]:
        """A mapping's (key, value) pairs in order, duplicates included."""
        c = self.children
        return [(c[i], c[i + 1]) for i in range(0, len(c) - 1, 2)]

    def __repr__(self) -> str:  # for test failures only
        return f"Node({self.kind}, {self.tag!r}, {self.value[:20]!r}, line={self.line})"


@dataclass(frozen=True)
class Bounds:
    """How much one YAML text may cost: events (nodes plus aliases), nesting depth, documents."""

    max_events: int
    max_depth: int
    max_documents: int


@dataclass
class Composed:
    """The documents of a stream, and what the composer noticed on the way."""

    documents: list[Node] = field(default_factory=list)
    events: int = 0  # nodes and aliases composed
    redefined_anchors: list[tuple[str, int]] = field(default_factory=list)  # (anchor, line)


def compose(text: str, bounds: Bounds, *, events_used: int = 0) -> Composed:
    """Compose every document of ``text`` into :class:`Node` graphs; never constructs anything.

    ``events_used`` counts events already spent on this file (a string parsed again as
    YAML shares its file's budget). Raises :class:`FormatError` for malformed YAML and
    :class:`LimitExceeded` when a bound is reached; nothing else, whatever the input.
    """
    out = Composed(events=events_used)
    loader = _Loader(text)
    try:
        _run(loader, out, bounds)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise FormatError(f"not valid YAML: {exc.problem or exc.context}{where}",
                          mark.index if mark is not None else None) from None
    except yaml.YAMLError as exc:  # ReaderError and the like: control characters, bad encoding
        raise FormatError(f"not valid YAML: {_one_line(exc)}", getattr(exc, "position", None)) from None
    except (ValueError, TypeError, OverflowError, UnicodeError) as exc:  # defensive: a reader edge case
        raise FormatError(f"not valid YAML: {type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        loader.dispose()
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _run(loader: yaml.SafeLoader, out: Composed, bounds: Bounds) -> None:
    stack: list[Node] = []
    anchors: dict[str, Node] = {}
    root: Node | None = None
    documents = 0
    while loader.check_event():
        event = loader.get_event()
        if isinstance(event, events.DocumentStartEvent):
            documents += 1
            if documents > bounds.max_documents:
                raise LimitExceeded("max_yaml_documents",
                                    f"more than {bounds.max_documents} YAML documents in one stream",
                                    event.start_mark.index)
            anchors, root = {}, None  # anchors are scoped to their document (as every loader does)
            continue
        if isinstance(event, events.DocumentEndEvent):
            if root is not None:
                out.documents.append(root)
            continue
        if isinstance(event, (events.StreamStartEvent, events.StreamEndEvent)):
            continue
        if isinstance(event, events.CollectionEndEvent):
            stack.pop()
            continue
        out.events += 1
        if out.events > bounds.max_events:
            raise LimitExceeded("max_yaml_events", f"more than {bounds.max_events} YAML nodes and aliases",
                                event.start_mark.index)
        mark = event.start_mark
        if isinstance(event, events.AliasEvent):
            node = anchors.get(event.anchor or "")
            if node is None:
                raise FormatError(f"alias *{event.anchor} names no anchor defined before it "
                                  f"(line {mark.line + 1})", mark.index)
        elif isinstance(event, events.ScalarEvent):
            node = Node(SCALAR, _explicit(event.tag), mark.line + 1, mark.index, event.value,
                        not event.style)  # plain: None (Python parser) or "" (libyaml)
        elif isinstance(event, events.SequenceStartEvent):
            node = Node(SEQUENCE, _explicit(event.tag), mark.line + 1, mark.index)
        elif isinstance(event, events.MappingStartEvent):
            node = Node(MAPPING, _explicit(event.tag), mark.line + 1, mark.index)
        else:  # pragma: no cover - PyYAML has no other event types
            raise FormatError(f"unexpected YAML event {type(event).__name__}", mark.index)
        if not isinstance(event, events.AliasEvent) and event.anchor is not None:
            if event.anchor in anchors:
                out.redefined_anchors.append((event.anchor, mark.line + 1))
            anchors[event.anchor] = node
        if stack:
            stack[-1].children.append(node)
        else:
            root = node
        if isinstance(event, events.CollectionStartEvent):
            if len(stack) >= bounds.max_depth:
                raise LimitExceeded("max_yaml_depth", f"YAML nested deeper than {bounds.max_depth} levels",
                                    mark.index)
            stack.append(node)


def _explicit(tag: str | None) -> str | None:
    # "!" is the non-specific tag (a quoted scalar's, or written "! value"): no constructor lookup.
    return None if tag in (None, "!") else tag

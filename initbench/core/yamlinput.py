"""YAML from users, read strictly and within bounds: every config file, override and option value.

PyYAML's ``safe_load`` runs no code, but it still accepts a few hundred bytes that expand to
billions of nodes through aliases (``&a [*a, *a, ...]`` nested a few times), silently keeps the
last of two equal keys, and recurses once per nesting level. :class:`BoundedLoader` refuses all
three while the document is composed, before anything is built from it:

- a document whose nodes, counting every alias as a full copy of what it names and a long
  string as several nodes, exceed ``MAX_EXPANDED_NODES`` (what validating or printing the
  expanded value would touch);
- nesting deeper than ``MAX_YAML_NESTING``; a mapping with a key twice;
- text longer than ``MAX_YAML_CHARS``.

It also reads ``1e-3`` as a float, as YAML 1.2 does (YAML 1.1 needs a dot: ``1.0e-3``), so a
number means the same in a file as on the command line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from initbench.core.errors import InitbenchError

#: Larger than any config: the shipped ones have under 100 nodes.
MAX_EXPANDED_NODES = 100_000
#: A scalar counts as one value per this many characters (so at most ~6 MB of expanded text).
CHARS_PER_VALUE = 64
MAX_YAML_NESTING = 50
MAX_YAML_CHARS = 1_000_000

#: Floats YAML 1.1 reads as strings: an exponent without a dot (``1e-3``, ``5E+2``).
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)$")


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs, deep nesting and duplicate keys (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}  # id(node) -> nodes it stands for, aliases expanded
        self._open: list[int] = []  # per node being composed: the expanded size of its children so far

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._expanded:
                raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refers to a node that contains it", event.start_mark)
            node = super().compose_node(parent, index)
            size = self._expanded[id(node)]
        else:
            if len(self._open) >= MAX_YAML_NESTING:
                raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_YAML_NESTING} levels", self.peek_event().start_mark)
            self._open.append(0)
            try:
                node = super().compose_node(parent, index)
            finally:
                children = self._open.pop()
            # A long string counts as many values: printing a list of aliases to it copies it each time.
            size = 1 + children + (len(node.value) // CHARS_PER_VALUE if isinstance(node, yaml.ScalarNode) else 0)
            self._expanded[id(node)] = size
        if size > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_EXPANDED_NODES} values once aliases are expanded", node.start_mark
            )
        if self._open:
            self._open[-1] += size
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise yaml.constructor.ConstructorError(None, None, "a key must be a scalar", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789"))


def load_yaml(text: str, source: str) -> Any:
    """Parse ``text`` with :class:`BoundedLoader`; any problem is one user error naming ``source``.

    Args:
        text: the YAML document.
        source: where it came from, as the message should name it: ``config a.yaml`` or
            ``override model.depth``. A file's errors also give the line and column.
    """
    if len(text) > MAX_YAML_CHARS:
        raise InitbenchError(f"YAML input {source} is longer than {MAX_YAML_CHARS} characters.", hint="A config is a few hundred characters; check that this is the file you meant.")
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InitbenchError(f"YAML syntax error in {where}: {problem}.") from None

"""The slice of SOQL the org's REST query answers for agents: ``BotDefinition`` and ``BotVersion``.

Enough to run the queries clients send to find an agent: ``SELECT Id, DeveloperName, MasterLabel,
Type, AgentType, (SELECT Id, Status FROM BotVersions) FROM BotDefinition WHERE DeveloperName = 'X'
LIMIT 1`` (forcedotcom/agents sends exactly this shape). Supported: a field list with one level of
child subquery, ``WHERE`` with ``=``, ``!=``, ``<>``, ``LIKE``, ``IN``/``NOT IN``, ``AND``/``OR``/``NOT``
and parentheses, ``ORDER BY``, ``LIMIT``. Text comparisons ignore case, as SOQL's do. Errors carry the
real error codes: ``MALFORMED_QUERY``, ``INVALID_TYPE``, ``INVALID_FIELD``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sessionforce.emulator._errors import RestError

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>!=|<>|[=(),])"
                    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))")
_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "limit", "asc", "desc",
             "true", "false", "null", "nulls", "first", "last"}

Record = dict[str, Any]
Predicate = Callable[[Record], bool]


@dataclass
class Query:
    """A parsed query: object, fields, child subqueries (by relationship name), filter, order, limit."""

    sobject: str
    fields: list[str]
    children: dict[str, Query] = field(default_factory=dict)
    where: Predicate | None = None
    order: list[tuple[str, bool]] = field(default_factory=list)
    limit: int | None = None
    #: For a subquery: the relationship name it selects FROM (``BotVersions``).
    relationship: str | None = None


def malformed(message: str) -> RestError:
    """A ``MALFORMED_QUERY`` error."""
    return RestError(400, "MALFORMED_QUERY", message)


def no_such_column(name: str, sobject: str) -> RestError:
    """Salesforce's ``INVALID_FIELD`` answer for an unknown field."""
    return RestError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'. If you are attempting to "
                     "use a custom field, be sure to append the '__c' after the custom field name. Please reference "
                     "your WSDL or the describe call for the appropriate names.")


def not_supported(sobject: str) -> RestError:
    """Salesforce's ``INVALID_TYPE`` answer for an unknown object."""
    return RestError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported. If you are attempting to use a "
                     "custom object, be sure to append the '__c' after the entity name. Please reference your WSDL "
                     "or the describe call for the appropriate names.")


class _Parser:
    """Recursive descent over the tokens of one query; ``columns`` maps object -> field names (any case)."""

    def __init__(self, text: str, columns: dict[str, dict[str, str]], children: dict[str, tuple[str, str]]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise malformed(f"unexpected token: '{text[position:position + 20].strip()}'")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0
        self.columns = columns
        self.relationships = children

    def peek(self) -> str:
        return self.tokens[self.index][1].lower() if self.index < len(self.tokens) else ""

    def take(self) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise malformed("unexpected end of query")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, word: str) -> None:
        _, value = self.take()
        if value.lower() != word:
            raise malformed(f"unexpected token: '{value}' (expected {word.upper()})")

    def name(self) -> str:
        kind, value = self.take()
        if kind != "word" or value.lower() in _KEYWORDS:
            raise malformed(f"unexpected token: '{value}'")
        return value

    def query(self, parent: str | None = None) -> Query:
        self.expect("select")
        raw_fields: list[str] = []
        subqueries: list[tuple[int, int]] = []
        while True:
            if self.peek() == "(":
                start = self.index
                depth = 0
                while True:  # skip the subquery; parsed once its object is known
                    _, value = self.take()
                    depth += {"(": 1, ")": -1}.get(value, 0)
                    if depth == 0:
                        break
                subqueries.append((start + 1, self.index - 1))
            else:
                raw_fields.append(self.name())
            if self.peek() != ",":
                break
            self.take()
        self.expect("from")
        sobject = self.name()
        canonical, relationship = self._object(sobject, parent)
        query = Query(canonical, [self.column(canonical, f) for f in raw_fields], relationship=relationship)
        end = self.index
        for start, stop in subqueries:
            self.index = start
            child = self.query(parent=canonical)
            if self.index != stop:
                raise malformed(f"unexpected token: '{self.tokens[self.index][1]}'")
            query.children[child.relationship or child.sobject] = child
        self.index = end
        if self.peek() == "where":
            self.take()
            query.where = self.disjunction(canonical)
        if self.peek() == "order":
            self.take()
            self.expect("by")
            while True:
                column = self.column(canonical, self.name())
                descending = False
                if self.peek() in ("asc", "desc"):
                    descending = self.take()[1].lower() == "desc"
                if self.peek() == "nulls":
                    self.take()
                    self.take()
                query.order.append((column, descending))
                if self.peek() != ",":
                    break
                self.take()
        if self.peek() == "limit":
            self.take()
            kind, value = self.take()
            if kind != "number" or not value.isdigit():
                raise malformed(f"unexpected token: '{value}' (LIMIT takes a whole number)")
            query.limit = int(value)
        return query

    def _object(self, name: str, parent: str | None) -> tuple[str, str | None]:
        """(object, relationship name): a top-level object by name, or a parent's child relationship."""
        if parent is None:
            for canonical in self.columns:
                if canonical.lower() == name.lower():
                    return canonical, None
            raise not_supported(name)
        relationship = self.relationships.get(parent)
        if relationship is None or relationship[0].lower() != name.lower():
            raise malformed(f"Didn't understand relationship '{name}' in FROM part of query call.")
        return relationship[1], relationship[0]

    def column(self, sobject: str, name: str) -> str:
        canonical = self.columns[sobject].get(name.lower())
        if canonical is None:
            raise no_such_column(name, sobject)
        return canonical

    def disjunction(self, sobject: str) -> Predicate:
        parts = [self.conjunction(sobject)]
        while self.peek() == "or":
            self.take()
            parts.append(self.conjunction(sobject))
        return parts[0] if len(parts) == 1 else _any(parts)

    def conjunction(self, sobject: str) -> Predicate:
        parts = [self.condition(sobject)]
        while self.peek() == "and":
            self.take()
            parts.append(self.condition(sobject))
        return parts[0] if len(parts) == 1 else _all(parts)

    def condition(self, sobject: str) -> Predicate:
        if self.peek() == "not":
            self.take()
            inner = self.condition(sobject)
            return lambda r: not inner(r)
        if self.peek() == "(":
            self.take()
            inner = self.disjunction(sobject)
            self.expect(")")
            return inner
        column = self.column(sobject, self.name())
        negate = False
        if self.peek() == "not":
            self.take()
            negate = True
        _, op = self.take()
        op = op.lower()
        if op == "in":
            self.expect("(")
            values = [self.value()]
            while self.peek() == ",":
                self.take()
                values.append(self.value())
            self.expect(")")
            keys = {_key(v) for v in values}
            return lambda r: (_key(r.get(column)) in keys) != negate
        if negate:
            raise malformed(f"unexpected token: '{op}' (NOT goes with IN)")
        value = self.value()
        if op == "=":
            return lambda r: _key(r.get(column)) == _key(value)
        if op in ("!=", "<>"):
            return lambda r: _key(r.get(column)) != _key(value)
        if op == "like" and isinstance(value, str):
            pattern = re.compile("^" + ".*".join(re.escape(p).replace("_", ".") for p in value.split("%")) + "$",
                                 re.I | re.S)
            return lambda r: isinstance(r.get(column), str) and pattern.match(r[column]) is not None
        raise malformed(f"unexpected token: '{op}'")

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "number":
            return float(value) if "." in value else int(value)
        literal = {"true": True, "false": False, "null": None}
        if value.lower() in literal:
            return literal[value.lower()]
        raise malformed(f"unexpected token: '{value}'")

    def parse(self) -> Query:
        query = self.query()
        if self.index != len(self.tokens):
            raise malformed(f"unexpected token: '{self.tokens[self.index][1]}'")
        return query


def _any(parts: list[Predicate]) -> Predicate:
    return lambda record: any(p(record) for p in parts)


def _all(parts: list[Predicate]) -> Predicate:
    return lambda record: all(p(record) for p in parts)


def _sort_key(column: str) -> Callable[[Record], tuple[bool, Any]]:
    # Nulls last, like SOQL's default for ascending order.
    return lambda record: (record.get(column) is None, _key(record.get(column)))


def _fixed(records: list[Record]) -> Callable[[str], list[Record]]:
    return lambda _sobject: records


def _key(value: Any) -> Any:
    """Comparison key: text compares without case, like SOQL."""
    return value.casefold() if isinstance(value, str) else value


def parse_query(text: str, columns: dict[str, dict[str, str]], children: dict[str, tuple[str, str]]) -> Query:
    """Parse ``text`` against the objects in ``columns`` (object -> lower-case name -> canonical name).

    ``children`` maps a parent object to ``(relationship name, child object)``; the relationship name is
    what a subquery selects ``FROM`` (``BotVersions``). Raises :class:`RestError` like the org would.
    """
    return _Parser(text, columns, children).parse()


def run_query(query: Query, table: Callable[[str], list[Record]], link: Callable[[str, Record], list[Record]],
              url: Callable[[str, Record], str]) -> dict[str, Any]:
    """Evaluate ``query``: ``table(object)`` lists records, ``link(child object, parent)`` a parent's
    children, ``url(object, record)`` a record's REST URL. Answers in the REST API's query shape."""
    records = [r for r in table(query.sobject) if query.where is None or query.where(r)]
    for column, descending in reversed(query.order):
        records.sort(key=_sort_key(column), reverse=descending)
    if query.limit is not None:
        records = records[: query.limit]
    rows = []
    for record in records:
        row: dict[str, Any] = {"attributes": {"type": query.sobject, "url": url(query.sobject, record)}}
        row.update((column, record.get(column)) for column in query.fields)
        for relationship, child in query.children.items():
            nested = run_query(child, _fixed(link(child.sobject, record)), link, url)
            row[relationship] = nested if nested["totalSize"] else None
        rows.append(row)
    return {"totalSize": len(rows), "done": True, "records": rows}

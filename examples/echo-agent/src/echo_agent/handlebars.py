"""A small, dependency-free renderer for the Handlebars subset used by structured inputs.

Azure AI Foundry "structured inputs" fill Handlebars placeholders in prompts (instructions,
system and developer messages). This module renders the documented subset:

* ``{{name}}``, ``{{a.b.c}}``, ``{{this}}``, ``{{this.x}}``, triple-stash ``{{{x}}}``;
* ``@index``, ``@first``, ``@last`` and ``@key`` inside ``#each``;
* ``{{#if x}}``, ``{{#unless x}}`` and ``{{#each xs}}`` (lists and mappings), each with an
  optional ``{{else}}``, nested freely;
* comments ``{{! ... }}`` and ``{{!-- ... --}}``, whitespace control ``{{~x~}}`` and escaped
  mustaches (``\\{{x}}`` renders ``{{x}}`` literally).

Values are inserted VERBATIM: neither ``{{x}}`` nor ``{{{x}}}`` HTML-escapes, because prompts
are not HTML (Handlebars.js would turn ``<`` into ``&lt;`` in ``{{x}}``; this renderer behaves
like Handlebars.js compiled with ``noEscape: true``).

Everything else follows Handlebars.js 4.x:

* a missing value renders as the empty string, and so does ``None``;
* ``None``, missing, ``False``, ``""``, ``0``, NaN and an empty list are falsy for ``#if``,
  ``#unless`` and ``#each``; an empty mapping is truthy (as an empty JavaScript object is);
* ``true``/``false`` for booleans, integers as digits, floats as JavaScript prints numbers
  (``1.0`` -> ``1``, ``2.5`` -> ``2.5``, ``1e-7`` -> ``1e-7``), lists as ``Array.toString``
  (items joined by ``,``), mappings as ``[object Object]``;
* ``.length`` of a list or string is its length;
* inside ``#each`` names are looked up on the current item only (no implicit walk to outer
  contexts, exactly as Handlebars.js without ``compat``);
* "standalone" lines (a line holding only a block tag, ``{{else}}`` or a comment, plus
  whitespace) are removed exactly as Handlebars.js does.

Other Handlebars syntax (helpers with arguments, partials, ``#with``, ``../`` paths,
subexpressions, ``@root``, literals, raw blocks, ...) raises :class:`TemplateError` with the line
and column of the offending tag. Mapping keys are iterated in mapping order (JavaScript would
list integer-like keys first).

Parsing is a single left-to-right scan. Rendering appends chunks to a list and counts the
output: :class:`RenderError` is raised as soon as ``max_output`` characters are exceeded, or when
rendering does an unreasonable amount of work that produces no output (nested ``#each`` over
large inputs with empty bodies).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["RenderError", "Template", "TemplateError", "parse", "render"]

# JavaScript's \s, which Handlebars.js uses for its whitespace rules.
_JS_WS = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_WS_SPLIT = re.compile(f"[{_JS_WS}]+")
# Characters that may not appear in a Handlebars identifier (lexer rule ID).
_NOT_ID = frozenset("!\"#%&'()*+,./;<=>@[\\]^`{|}~" + _JS_WS)
_NUMBER = re.compile(r"-?[0-9]+")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_LITERALS = frozenset({"true", "false", "null", "undefined"})
_BLOCKS = ("if", "unless", "each")
_HELPERS = frozenset(
    {"if", "unless", "each", "with", "lookup", "log", "helperMissing", "blockHelperMissing"}
)
_DATA = frozenset({"index", "first", "last", "key"})
_MAX_DEPTH = 100
_EXTRA_STEPS = 1_000_000


class TemplateError(ValueError):
    """A malformed or unsupported template; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} at line {line}, column {column}")
        self.line = line
        self.column = column


class RenderError(ValueError):
    """Rendering was stopped, e.g. because the output grew too large."""


class _Missing:
    """Marker for a value that is not there (JavaScript ``undefined``)."""

    __slots__ = ()


_MISSING: Any = _Missing()
_NULL_CONTEXT: Mapping[str, Any] = MappingProxyType({})


class _Path:
    """A parsed value reference: ``name.x``, ``this.x`` or ``@index``."""

    __slots__ = ("data", "parts", "this")

    def __init__(self, parts: tuple[str, ...], *, this: bool = False, data: str = "") -> None:
        self.parts = parts
        self.this = this
        self.data = data


class _Text:
    """Literal text; ``value`` is what is left after whitespace control."""

    __slots__ = ("left_stripped", "original", "right_stripped", "value")

    def __init__(self, text: str) -> None:
        self.original = self.value = text
        self.left_stripped = self.right_stripped = False


class _Var:
    """``{{path}}`` or ``{{{path}}}``."""

    __slots__ = ("close", "open", "path")

    def __init__(self, path: _Path, open_: bool, close: bool) -> None:
        self.path, self.open, self.close = path, open_, close


class _Comment:
    """A comment; it only matters for whitespace control."""

    __slots__ = ("close", "open")

    def __init__(self, open_: bool, close: bool) -> None:
        self.open, self.close = open_, close


class _Block:
    """``{{#if}}``, ``{{#unless}}`` or ``{{#each}}`` with its bodies and ``~`` flags."""

    __slots__ = (
        "close_strip",
        "inverse",
        "inverse_strip",
        "kind",
        "open_strip",
        "path",
        "pos",
        "program",
    )

    def __init__(self, kind: str, path: _Path, open_strip: tuple[bool, bool], pos: int) -> None:
        self.kind, self.path, self.open_strip, self.pos = kind, path, open_strip, pos
        self.program: list[Any] = []
        self.inverse: list[Any] | None = None
        self.inverse_strip = (False, False)
        self.close_strip = (False, False)


class _Strip:
    """What a statement tells its parent program about whitespace (Handlebars.js ``strip``)."""

    __slots__ = ("close", "close_standalone", "inline_standalone", "open", "open_standalone")

    def __init__(
        self,
        open_: bool,
        close: bool,
        *,
        open_standalone: bool = False,
        close_standalone: bool = False,
        inline_standalone: bool = False,
    ) -> None:
        self.open, self.close = open_, close
        self.open_standalone = open_standalone
        self.close_standalone = close_standalone
        self.inline_standalone = inline_standalone


def _position(source: str, pos: int) -> tuple[int, int]:
    """1-based line and column of offset ``pos``."""
    line = source.count("\n", 0, pos) + 1
    return line, pos - (source.rfind("\n", 0, pos) + 1) + 1


class _Parser:
    """Single-pass scanner building the statement tree."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.root: list[Any] = []
        self.stack: list[_Block] = []

    def error(self, message: str, pos: int) -> TemplateError:
        return TemplateError(message, *_position(self.src, pos))

    def body(self) -> list[Any]:
        if not self.stack:
            return self.root
        block = self.stack[-1]
        return block.program if block.inverse is None else block.inverse

    def parse(self) -> list[Any]:
        src, n, i = self.src, len(self.src), 0
        while i < n:
            j = src.find("{{", i)
            if j < 0:
                self.body().append(_Text(src[i:]))
                break
            text, escaped = src[i:j], False
            if text.endswith("\\\\"):
                text = text[:-1]
            elif text.endswith("\\"):
                text, escaped = text[:-1], True
            if text:
                self.body().append(_Text(text))
            i = self.escaped(j) if escaped else self.tag(j)
        if self.stack:
            block = self.stack[-1]
            raise self.error(f"unclosed {{{{#{block.kind}}}}} block", block.pos)
        return self.root

    def escaped(self, j: int) -> int:
        """Literal text for ``\\{{``: up to the next ``{{``, ``\\{{`` or ``\\\\{{``."""
        src = self.src
        q = src.find("{{", j + 2)
        end = len(src) if q < 0 else q
        if q >= 0 and q - 1 >= j + 2 and src[q - 1] == "\\":
            end = q - 2 if q - 2 >= j + 2 and src[q - 2] == "\\" else q - 1
        self.body().append(_Text(src[j:end]))
        return end

    def tag(self, j: int) -> int:
        """Parse the tag starting at ``j`` (which holds ``{{``); return the offset after it."""
        src = self.src
        if src.startswith("{{{{", j):
            raise self.error("raw blocks ({{{{...}}}}) are not supported", j)
        k = j + 2
        open_ = src.startswith("~", k)
        k += open_
        kind = src[k : k + 1]
        if kind == "!":
            return self.comment(j, k, open_)
        if kind == "{":
            end = src.find("}}", k + 1)
            if end < 0:
                raise self.error("unterminated '{{{' (missing '}}}')", j)
            inner = src[k + 1 : end]
            if inner.endswith("}~"):
                inner, close, after = inner[:-2], True, end + 2
            elif src.startswith("}}}", end) and not src.startswith("}}}}", end):
                close, after = False, end + 3
            else:
                raise self.error("'{{{' must be closed by '}}}'", j)
            self.body().append(_Var(self.value_path(inner, j), open_, close))
            return after
        end = src.find("}}", k)
        if end < 0:
            raise self.error("unterminated '{{' (missing '}}')", j)
        inner = src[k:end]
        close = inner.endswith("~")
        if close:
            inner = inner[:-1]
        strip = (open_, close)
        unsupported = {
            ">": "partials ({{> ...}})",
            "&": "'{{&...}}' (use '{{{...}}}')",
            "*": "decorators ({{* ...}})",
            "^": "inverse sections and '{{^}}' (use {{#unless}} or {{else}})",
        }
        if kind in unsupported:
            raise self.error(f"{unsupported[kind]} are not supported", j)
        # Handlebars.js reads '}}}' as the end of a '{{{' tag, so '{{x}}}' is malformed.
        brace_after = not close and src.startswith("}", end + 2)
        if brace_after and kind in ("#", "/"):
            raise self.error("'}}}' can only close a '{{{' tag", j)
        if kind == "#":
            self.open_block(inner[1:], strip, j)
        elif kind == "/":
            self.close_block(inner[1:], strip, j)
        else:
            expr = inner.lstrip(_JS_WS)
            if expr.startswith("else") and expr[4:5] not in _WORD_CHARS:
                # Handlebars.js reads '{{else' followed by a non-word character as an else tag.
                if expr[4:].strip(_JS_WS):
                    raise self.error("'{{else ...}}' chains are not supported", j)
                self.else_tag(strip, j)
            elif brace_after:
                raise self.error("'}}}' can only close a '{{{' tag", j)
            else:
                self.body().append(_Var(self.value_path(inner, j), open_, close))
        return end + 2

    def comment(self, j: int, k: int, open_: bool) -> int:
        src = self.src
        if src.startswith("--", k + 1):
            m = src.find("--", k + 1)
            while m >= 0 and not (src.startswith("}}", m + 2) or src.startswith("~}}", m + 2)):
                m = src.find("--", m + 1)
            if m < 0:
                raise self.error("unterminated comment (missing '--}}')", j)
            close = src.startswith("~", m + 2)
            after = m + 4 + close
        else:
            end = src.find("}}", k + 1)
            if end < 0:
                raise self.error("unterminated comment (missing '}}')", j)
            close = src[end - 1] == "~" and end - 1 > k
            after = end + 2
        self.body().append(_Comment(open_, close))
        return after

    def words(self, inner: str, j: int) -> list[str]:
        if "(" in inner or ")" in inner:
            raise self.error("subexpressions are not supported", j)
        words = [w for w in _WS_SPLIT.split(inner) if w]
        if not words:
            raise self.error("empty expression", j)
        return words

    def open_block(self, inner: str, strip: tuple[bool, bool], j: int) -> None:
        if inner.startswith(">"):
            raise self.error("partial blocks ({{#> ...}}) are not supported", j)
        if inner.startswith("*"):
            raise self.error("decorators ({{#* ...}}) are not supported", j)
        words = self.words(inner, j)
        name = words[0]
        if name not in _BLOCKS:
            raise self.error(
                f"block helper '{{{{#{name}}}}}' is not supported "
                "(supported blocks: #if, #unless, #each)",
                j,
            )
        if len(words) < 2:
            raise self.error(f"'{{{{#{name}}}}}' needs exactly one argument", j)
        if len(words) > 2:
            raise self.error(
                f"'{{{{#{name}}}}}' takes exactly one argument; helper arguments, hash arguments"
                " and block parameters are not supported",
                j,
            )
        if len(self.stack) >= _MAX_DEPTH:
            raise self.error(f"blocks are nested more than {_MAX_DEPTH} deep", j)
        block = _Block(name, self.path(words[1], j), strip, j)
        self.body().append(block)
        self.stack.append(block)

    def close_block(self, inner: str, strip: tuple[bool, bool], j: int) -> None:
        words = self.words(inner, j)
        if len(words) != 1:
            raise self.error("a closing tag takes no arguments", j)
        name = words[0]
        if not self.stack:
            raise self.error(f"'{{{{/{name}}}}}' does not close any open block", j)
        block = self.stack[-1]
        if name != block.kind:
            line, column = _position(self.src, block.pos)
            raise self.error(
                f"'{{{{/{name}}}}}' does not match '{{{{#{block.kind}}}}}' "
                f"(opened at line {line}, column {column})",
                j,
            )
        block.close_strip = strip
        self.stack.pop()

    def else_tag(self, strip: tuple[bool, bool], j: int) -> None:
        if not self.stack:
            raise self.error("'{{else}}' outside a block", j)
        block = self.stack[-1]
        if block.inverse is not None:
            raise self.error(f"second '{{{{else}}}}' in '{{{{#{block.kind}}}}}'", j)
        block.inverse, block.inverse_strip = [], strip

    def value_path(self, inner: str, j: int) -> _Path:
        """The path of a ``{{x}}`` or ``{{{x}}}`` tag."""
        words = self.words(inner, j)
        if len(words) > 1:
            raise self.error(f"helpers with arguments are not supported: '{inner.strip()}'", j)
        path = self.path(words[0], j)
        if len(path.parts) == 1 and not path.this and path.parts[0] in _HELPERS:
            raise self.error(f"built-in helper '{path.parts[0]}' is not a value", j)
        return path

    def path(self, word: str, j: int) -> _Path:
        """Parse ``name.x``, ``this``, ``this.x`` or ``@index``; reject everything else."""
        if word.startswith("@"):
            if word[1:] in _DATA:
                return _Path((), data=word[1:])
            raise self.error(
                f"'{word}' is not supported (supported: @index, @first, @last, @key)", j
            )
        checks = (
            (word.startswith(".."), "parent paths (../)"),
            (word.startswith("."), "'.' and './' paths (use 'this')"),
            ("/" in word, "'/' path separators (use '.')"),
            ("[" in word, "'[...]' path segments"),
            ('"' in word or "'" in word, "string literals"),
            ("=" in word, "hash arguments"),
            ("|" in word, "block parameters"),
        )
        for bad, what in checks:
            if bad:
                raise self.error(f"{what} are not supported: '{word}'", j)
        parts = word.split(".")
        for part in parts:
            if not part or any(ch in _NOT_ID for ch in part):
                raise self.error(f"invalid path '{word}'", j)
            if part in _LITERALS or _NUMBER.fullmatch(part):
                raise self.error(f"literal values are not supported: '{word}'", j)
        if "this" in parts[1:]:
            raise self.error(f"invalid path '{word}'", j)
        if parts[0] == "this":
            return _Path(tuple(parts[1:]), this=True)
        return _Path(tuple(parts))


# --- whitespace control: a port of Handlebars.js compiler/whitespace-control.js -----------


def _is_prev_ws(body: list[Any], i: int | None, is_root: bool) -> bool:
    if i is None:
        i = len(body)
    prev = body[i - 1] if i >= 1 else None
    sibling = body[i - 2] if i >= 2 else None
    if prev is None:
        return is_root
    if not isinstance(prev, _Text):
        return False
    text = prev.original
    tail = text[len(text.rstrip(_JS_WS)) :]
    if sibling is not None or not is_root:
        return "\n" in tail  # /\r?\n\s*?$/
    return "\n" in tail or len(tail) == len(text)  # /(^|\r?\n)\s*?$/


def _is_next_ws(body: list[Any], i: int | None, is_root: bool) -> bool:
    if i is None:
        i = -1
    nxt = body[i + 1] if i + 1 < len(body) else None
    sibling = body[i + 2] if i + 2 < len(body) else None
    if nxt is None:
        return is_root
    if not isinstance(nxt, _Text):
        return False
    text = nxt.original
    head = text[: len(text) - len(text.lstrip(_JS_WS))]
    if sibling is not None or not is_root:
        return "\n" in head  # /^\s*?\r?\n/
    return "\n" in head or len(head) == len(text)  # /^\s*?(\r?\n|$)/


def _omit_right(body: list[Any], i: int | None, multiple: bool = False) -> None:
    k = 0 if i is None else i + 1
    current = body[k] if k < len(body) else None
    if not isinstance(current, _Text) or (not multiple and current.right_stripped):
        return
    original = current.value
    if multiple:
        current.value = original.lstrip(_JS_WS)  # /^\s+/
    else:  # /^[ \t]*\r?\n?/
        n = len(original) - len(original.lstrip(" \t"))
        n += original.startswith("\r", n)
        n += original.startswith("\n", n)
        current.value = original[n:]
    current.right_stripped = current.value != original


def _omit_left(body: list[Any], i: int | None, multiple: bool = False) -> bool:
    k = len(body) - 1 if i is None else i - 1
    current = body[k] if k >= 0 else None
    if not isinstance(current, _Text) or (not multiple and current.left_stripped):
        return False
    original = current.value
    current.value = original.rstrip(_JS_WS if multiple else " \t")
    current.left_stripped = current.value != original
    return current.left_stripped


def _ws_statement(node: Any) -> _Strip | None:
    if isinstance(node, _Var):
        return _Strip(node.open, node.close)
    if isinstance(node, _Comment):
        return _Strip(node.open, node.close, inline_standalone=True)
    if isinstance(node, _Block):
        return _ws_block(node)
    return None


def _ws_program(body: list[Any], is_root: bool) -> None:
    for i, current in enumerate(body):
        strip = _ws_statement(current)
        if strip is None:
            continue
        prev_ws = _is_prev_ws(body, i, is_root)
        next_ws = _is_next_ws(body, i, is_root)
        if strip.close:
            _omit_right(body, i, True)
        if strip.open:
            _omit_left(body, i, True)
        if strip.inline_standalone and prev_ws and next_ws:
            _omit_right(body, i)
            _omit_left(body, i)
        if strip.open_standalone and prev_ws:
            _omit_right(current.program, None)
            _omit_left(body, i)
        if strip.close_standalone and next_ws:
            _omit_right(body, i)
            _omit_left(current.inverse if current.inverse is not None else current.program, None)


def _ws_block(block: _Block) -> _Strip:
    _ws_program(block.program, False)
    program, inverse = block.program, block.inverse
    if inverse is not None:
        _ws_program(inverse, False)
    strip = _Strip(
        block.open_strip[0],
        block.close_strip[1],
        open_standalone=_is_next_ws(program, None, False),
        close_standalone=_is_prev_ws(inverse if inverse is not None else program, None, False),
    )
    if block.open_strip[1]:
        _omit_right(program, None, True)
    if inverse is not None:
        if block.inverse_strip[0]:
            _omit_left(program, None, True)
        if block.inverse_strip[1]:
            _omit_right(inverse, None, True)
        if block.close_strip[0]:
            _omit_left(inverse, None, True)
        if _is_prev_ws(program, None, False) and _is_next_ws(inverse, None, False):
            _omit_left(program, None)
            _omit_right(inverse, None)
    elif block.close_strip[0]:
        _omit_left(program, None, True)
    return strip


# --- values --------------------------------------------------------------------------------


def _js_number(value: float) -> str:
    """Format a float as JavaScript's ``Number.prototype.toString`` does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    from decimal import Decimal  # here, not at the top: start-up never formats a number

    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    k = len(digits)
    n = len(digit_tuple) + int(exponent)  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return "-" + text if sign else text


def _to_str(value: Any) -> str:
    """JavaScript ``String(value)`` for JSON-like values (``None`` and missing -> ``""``)."""
    if isinstance(value, str):
        return value
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, (list, tuple)):
        return ",".join(_to_str(item) for item in value)
    return str(value)


def _truthy(value: Any) -> bool:
    """Handlebars.js truthiness for ``#if``, ``#unless`` and ``#each``."""
    if value is None or value is _MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0 and not math.isnan(value)
    if isinstance(value, (str, list, tuple)):
        return len(value) > 0
    return True


def _get(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, _MISSING)
    if name == "length" and isinstance(value, (str, list, tuple)):
        return len(value)
    return _MISSING


class _Renderer:
    """Evaluates a statement tree into a list of chunks, enforcing the output cap."""

    def __init__(self, max_output: int) -> None:
        self.chunks: list[str] = []
        self.size = 0
        self.max_output = max_output
        self.steps = 0
        self.max_steps = 4 * max_output + _EXTRA_STEPS

    def emit(self, text: str) -> None:
        if text:
            self.size += len(text)
            if self.size > self.max_output:
                raise RenderError(f"rendered output exceeds {self.max_output} characters")
            self.chunks.append(text)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise RenderError(
                f"rendering exceeds {self.max_steps} steps (nested #each over large inputs?)"
            )

    @staticmethod
    def resolve(path: _Path, ctx: Any, data: dict[str, Any] | None) -> Any:
        if path.data:
            return _MISSING if data is None else data[path.data]
        value = ctx
        for part in path.parts:
            value = _get(value, part)
        return value

    def program(self, body: list[Any], ctx: Any, data: dict[str, Any] | None) -> None:
        for node in body:
            self.step()
            if isinstance(node, _Text):
                self.emit(node.value)
            elif isinstance(node, _Var):
                self.emit(_to_str(self.resolve(node.path, ctx, data)))
            elif isinstance(node, _Block):
                self.block(node, ctx, data)

    def block(self, node: _Block, ctx: Any, data: dict[str, Any] | None) -> None:
        value = self.resolve(node.path, ctx, data)
        if ctx is None:
            # Handlebars.js calls block helpers on `{}` when `this` is null (a null #each item).
            ctx = _NULL_CONTEXT
        if node.kind != "each":
            if _truthy(value) == (node.kind == "if"):
                self.program(node.program, ctx, data)
            elif node.inverse is not None:
                self.program(node.inverse, ctx, data)
            return
        items: list[tuple[Any, Any]] = []
        if isinstance(value, Mapping):
            items = list(value.items())
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        if not items:
            if node.inverse is not None:
                self.program(node.inverse, ctx, data)
            return
        last = len(items) - 1
        for index, (key, item) in enumerate(items):
            self.step()
            loop = {"index": index, "key": key, "first": index == 0, "last": index == last}
            self.program(node.program, item, loop)


def _collect(body: list[Any], in_each: bool, names: set[str]) -> None:
    for node in body:
        if isinstance(node, (_Var, _Block)):
            path = node.path
            if not in_each and not path.data and path.parts:
                names.add(path.parts[0])
        if isinstance(node, _Block):
            _collect(node.program, in_each or node.kind == "each", names)
            if node.inverse is not None:
                _collect(node.inverse, in_each, names)


class Template:
    """A parsed template; create it with :func:`parse`."""

    __slots__ = ("_body", "_source")

    def __init__(self, source: str, body: list[Any]) -> None:
        self._source = source
        self._body = body

    def __repr__(self) -> str:
        return f"Template({self._source!r})"

    def render(self, values: Mapping[str, Any], *, max_output: int = 1_000_000) -> str:
        """Render with ``values`` as the root context; raise RenderError past ``max_output``."""
        renderer = _Renderer(max_output)
        renderer.program(self._body, values, None)
        return "".join(renderer.chunks)

    def variables(self) -> set[str]:
        """Top-level names the template reads (names inside ``#each`` bodies are item fields)."""
        names: set[str] = set()
        _collect(self._body, False, names)
        return names


def parse(source: str) -> Template:
    """Parse ``source``; raise :class:`TemplateError` if it is malformed or unsupported."""
    body = _Parser(source).parse()
    _ws_program(body, True)
    return Template(source, body)


def render(source: str, values: Mapping[str, Any], *, max_output: int = 1_000_000) -> str:
    """Parse ``source`` and render it with ``values``."""
    return parse(source).render(values, max_output=max_output)

"""Reading typed values at a key path of a parsed TOML document.

Every mistake is a `ConfigError` naming the key path (`windows[3].services[1]`)
and saying what was expected and what was found.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from collections.abc import Callable, Collection
from typing import Any, NoReturn

Check = Callable[[Any], object]


class ConfigError(Exception):
    """A mistake in the hall config, at one key path."""

    def __init__(self, key: str, reason: str, source: str = "<config>") -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.key = key
        self.reason = reason
        self.source = source



REQUIRED: Any = object()


def found(value: object) -> str:
    """How a TOML value reads in a message: `integer 5`, `string 'abc'`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"{type(value).__name__.replace('int', 'integer')} {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, dict):
        return "a table"
    return f"{type(value).__name__} {value}"


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def matches(pattern: str) -> Check:
    """A check that the value is a string matching `pattern` in full."""
    return lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None


def check(key: str, value: Any, expected: str, ok: Check) -> Any:
    if not ok(value):
        raise ConfigError(key, f"expected {expected}, found {found(value)}")
    return value


class Table:
    """A TOML table at a key path; keys it does not allow are refused up front."""

    def __init__(self, value: object, path: str, allowed: Collection[str], hint: str = "") -> None:
        self.data: dict[str, Any] = check(path or "(file)", value, "a table", lambda v: isinstance(v, dict))
        self.path = path
        for name in self.data:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                guess = f" (did you mean '{close[0]}'?)" if close else ""
                self.fail(name, f"unknown key{guess}; allowed here: {', '.join(allowed)}{hint}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, reason: str) -> NoReturn:
        raise ConfigError(self.key(name), reason)

    def get(self, name: str, expected: str, ok: Check, default: Any = REQUIRED) -> Any:
        if name in self.data:
            return check(self.key(name), self.data[name], expected, ok)
        if default is REQUIRED:
            self.fail(name, f"missing; expected {expected}")
        return default

    def text(self, name: str, default: Any = REQUIRED) -> str:
        return self.get(name, "a non-empty string", is_text, default)

    def flag(self, name: str, default: bool) -> bool:
        return self.get(name, "true or false", lambda v: isinstance(v, bool), default)

    def integer(self, name: str, low: int, high: int, default: Any = REQUIRED) -> int:
        expected = f"an integer from {low} to {high}"
        return self.get(name, expected, lambda v: is_int(v) and low <= v <= high, default)

    def choice(self, name: str, choices: Collection[str], default: Any = REQUIRED) -> str:
        expected = "one of " + ", ".join(f'"{c}"' for c in choices)
        return self.get(name, expected, lambda v: isinstance(v, str) and v in choices, default)

    def items(self, name: str, default: Any = REQUIRED, expected: str = "an array") -> list[tuple[str, Any]]:
        """An array's items, each with its own key path (`windows[3].services[1]`)."""
        values = self.get(name, expected, lambda v: isinstance(v, list), default)
        return [(f"{self.key(name)}[{i}]", v) for i, v in enumerate(values)]

    def table(self, name: str, allowed: Collection[str], required: bool = False) -> Table:
        value = self.get(name, f"a table [{self.key(name)}]", lambda v: True, REQUIRED if required else {})
        return Table(value, self.key(name), allowed)

    def tables(self, name: str, allowed: Collection[str], required: bool, hint: str = "") -> list[Table]:
        """An array of tables (`[[name]]`); when required, at least one entry."""
        items = self.items(name, REQUIRED if required else [], f"an array of tables ([[{name}]])")
        if required and not items:
            self.fail(name, f"expected at least one [[{name}]] entry, found none")
        return [Table(value, key, allowed, hint) for key, value in items]


def claim(seen: dict[object, str], value: object, key: str, what: str) -> None:
    """Refuse a second entry with the same prefix, number or id."""
    if value in seen:
        raise ConfigError(key, f"duplicate {what} {value!r}; already used at {seen[value]}")
    seen[value] = key


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as data; a file that cannot be read, is not UTF-8 or is not TOML is a
    ConfigError at key "(file)"."""
    source = str(path)
    try:
        return tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as e:
        raise ConfigError("(file)", f"cannot read the file: {e.strerror}", source) from None
    except UnicodeDecodeError:
        raise ConfigError("(file)", "not UTF-8 text; save the file as UTF-8 (not GBK)", source) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("(file)", f"not valid TOML: {e}", source) from None

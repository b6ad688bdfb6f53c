"""How a setting is declared: once, as a typed field with its unit, bounds and help.

A settings class is a pydantic dataclass whose fields are made with :func:`setting`. From
those fields the command line (:mod:`harness.config`), the sweep file's axes, the recorded
``settings.json`` and ``make help`` are generated, and every value a user gives is checked
once, here: a number is finite, of the right kind and in its range, or the user gets one
line naming the setting, the value and what it accepts (:func:`problem`).

Numbers are declared with :data:`Whole` (an integer; a bool or a fraction is refused) or
:data:`Number` (a finite real); both also accept the text a command line gives ("8",
"0.5"), and refuse ``nan``, ``inf`` and words.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from common.errors import ConfigError

# Every settings class uses this: unknown names and nan/inf are refused.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)


class SettingValueError(ValueError):
    """A value a setting cannot take; the text says what it accepts."""


def did_you_mean(name: str, known: Iterable[str], n: int = 1) -> str:
    """`` (did you mean X?)`` naming the known names nearest ``name`` (those it begins,
    else the closest spelt), or ``""``: the one hint every "unknown name" message gives."""
    known = list(known)
    close = [k for k in known if k.startswith(name)] if len(name) >= 3 else []
    close = close or difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    return f" (did you mean {' or '.join(close[:n])}?)" if close else ""


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        raise SettingValueError("expected a whole number, not true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        raise SettingValueError("expected a whole number")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if text.lstrip("+-").isdigit() and len(text) <= 19:
            return int(text)
    raise SettingValueError("expected a whole number")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise SettingValueError("expected a number, not true/false")
    if isinstance(value, int | float):
        number = float(value) if abs(value) < 1e308 or isinstance(value, float) else math.inf
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise SettingValueError("expected a number") from None
    else:
        raise SettingValueError("expected a number")
    if not math.isfinite(number):
        raise SettingValueError("expected a finite number")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "on", "yes", "1",
                                                             "false", "off", "no", "0"):
        return value.strip().lower() in ("true", "on", "yes", "1")
    raise SettingValueError("expected true or false (on/off)")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingValueError("expected a non-empty text")
    if "\x00" in value:
        raise SettingValueError("expected a text without NUL bytes")
    return value


Whole = Annotated[int, BeforeValidator(_whole)]
Number = Annotated[float, BeforeValidator(_number)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Text = Annotated[str, BeforeValidator(_text)]


def choice(values: Sequence[str], *, fold_case: bool = True) -> Any:
    """A text that must be one of ``values``; with ``fold_case`` any case is accepted and
    the declared spelling kept (``offline`` -> ``Offline``)."""
    allowed = tuple(values)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise SettingValueError(f"expected one of {', '.join(allowed)}")
        if value in allowed:
            return value
        folded = {v.lower(): v for v in allowed}
        if fold_case and value.strip().lower() in folded:
            return folded[value.strip().lower()]
        close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.5) or \
            difflib.get_close_matches(value.lower(), list(folded), n=1, cutoff=0.5)
        hint = f" (did you mean {folded.get(close[0], close[0])}?)" if close else ""
        raise SettingValueError(f"expected one of {', '.join(allowed)}{hint}")

    return Annotated[str, BeforeValidator(check)]


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    """What a field declares beyond its type: how people name and read it."""

    help: str
    flag: str | None = None  # the command-line flag; None: not on the command line
    unit: str | None = None
    sweep: str | None = None  # "axis": a sweep point may vary it; "base": the base only
    metavar: str | None = None
    invert: str | None = None  # a true-by-default switch: the flag that turns it off
    choices: tuple[str, ...] = ()
    repeat: bool = False  # the flag may be given several times (a tuple of values)
    cli_default: Any = None  # what the flag means when left out, if not the field default
    zero_means_none: bool = False  # the flag's 0 stands for None ("off")


def setting(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
            unit: str | None = None, sweep: str | None = None, metavar: str | None = None,
            invert: str | None = None, choices: Sequence[str] = (), repeat: bool = False,
            ge: float | None = None, gt: float | None = None, le: float | None = None,
            default_factory: Callable[[], Any] | None = None,
            zero_means_none: bool = False) -> Any:
    """A field of a settings class: its default, bounds (``ge``/``gt``/``le``) and the
    :class:`SettingInfo` the command line, sweeps and help are generated from."""
    info = SettingInfo(help=help, flag=flag, unit=unit, sweep=sweep, metavar=metavar,
                       invert=invert, choices=tuple(choices), repeat=repeat,
                       zero_means_none=zero_means_none)
    kwargs: dict[str, Any] = {"ge": ge, "gt": gt, "le": le, "description": help,
                              "json_schema_extra": {"setting": dataclasses.asdict(info)}}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if default_factory is not None:
        return Field(default_factory=default_factory, **kwargs)
    if default is dataclasses.MISSING:
        return Field(**kwargs)
    return Field(default, **kwargs)


@dataclasses.dataclass(frozen=True)
class Declared:
    """One declared field of a settings class, as the generators see it."""

    name: str
    annotation: Any
    validators: str  # the field's metadata, as text: tells the kind of a narrowed type
    default: Any
    info: SettingInfo
    ge: float | None
    gt: float | None
    le: float | None

    @property
    def kind(self) -> str:
        """``whole``, ``number``, ``flag``, ``choice``, ``text``, ``path`` or ``other``."""
        text = repr(self.annotation) + self.validators
        if self.info.choices:
            return "choice"
        for marker, kind in (("_whole", "whole"), ("_number", "number"), ("_flag", "flag"),
                             ("Path", "path"), ("_text", "text")):
            if marker in text:
                return kind
        if self.annotation is bool:
            return "flag"
        return "text" if "str" in text else "other"

    def accepts(self) -> str:
        """What the field accepts, for errors and help: ``a whole number from 1 to 65536``."""
        kind = self.kind
        if kind == "choice":
            return f"one of {', '.join(self.info.choices)}"
        if kind == "flag":
            return "true or false"
        if kind in ("whole", "number"):
            noun = "a whole number" if kind == "whole" else "a number"
            low = self.ge if self.ge is not None else self.gt
            low_text = None if low is None else _num(low)
            if self.le is not None and self.ge is not None:
                text = f"{noun} from {low_text} to {_num(self.le)}"
            elif self.le is not None and self.gt is not None:
                text = f"{noun} above {low_text}, at most {_num(self.le)}"
            elif self.gt is not None:
                text = f"{noun} above {low_text}"
            elif self.ge is not None:
                text = f"{noun} of at least {low_text}"
            else:
                text = noun
            return text + (f" ({self.info.unit})" if self.info.unit else "")
        return "a path" if kind == "path" else "a text"


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def declared_fields(cls: type) -> list[Declared]:
    """The fields of a pydantic dataclass made with :func:`setting`, in order."""
    found = []
    fields: dict[str, FieldInfo] = cls.__pydantic_fields__  # type: ignore[attr-defined]
    for name, field in fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or "setting" not in extra:
            continue
        info = SettingInfo(**{**extra["setting"], "choices": tuple(extra["setting"]["choices"])})
        bounds: dict[str, float | None] = {"ge": None, "gt": None, "le": None}
        for item in field.metadata:
            for key in bounds:
                if getattr(item, key, None) is not None:
                    bounds[key] = getattr(item, key)
        default = None if field.default_factory is not None else field.default
        if default is not None and type(default).__name__ == "PydanticUndefinedType":
            default = dataclasses.MISSING
        annotation = field.rebuild_annotation() if hasattr(field, "rebuild_annotation") \
            else field.annotation
        found.append(Declared(name, annotation, repr(field.metadata), default, info, **bounds))
    return found


def all_declared(cls: type, prefix: str = "") -> dict[str, Declared]:
    """Every declared field of ``cls`` and of the settings classes it holds, by dotted
    path (``backend_settings.intra_op_threads``)."""
    found: dict[str, Declared] = {}
    for declared in declared_fields(cls):
        found[prefix + declared.name] = declared
        if hasattr(declared.annotation, "__pydantic_fields__"):
            found.update(all_declared(declared.annotation, f"{prefix}{declared.name}."))
    return found


def _given(values: Any, loc: list[str], fallback: Any) -> Any:
    """The value the user gave at ``loc`` (before any conversion), else ``fallback``."""
    for part in loc:
        if not isinstance(values, dict) or part not in values:
            return fallback
        values = values[part]
    return values


def problem(exc: ValidationError, name_of: Callable[[str], str],
            fields: dict[str, Declared] | None = None, values: Any = None) -> str:
    """One line for the first error of ``exc``: the setting (``name_of(dotted path)``), the
    value given (``values``: what was passed in) and what the setting accepts (``fields``:
    by dotted path)."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error.get("loc", ()) if not str(part).isdigit()]
    path = ".".join(loc)
    where = name_of(path) if loc else "settings"
    given = _given(values, loc, error.get("input"))
    shown = repr(given) if not isinstance(given, str) else repr(given[:60])
    if error.get("type") in ("unexpected_keyword_argument", "extra_forbidden"):
        known = sorted(fields or {})
        close = difflib.get_close_matches(path, known, n=1)
        hint = f" (did you mean {name_of(close[0])}?)" if close else ""
        return f"{where}: unknown setting{hint}"
    message = str((error.get("ctx") or {}).get("error") or error.get("msg", "invalid"))
    declared = (fields or {}).get(path)
    hint = message[message.index(" (did you mean"):] if "(did you mean" in message else ""
    if declared is not None and declared.kind in ("text", "other") \
            and error.get("type") == "value_error":  # the field's own check says it all
        return f"{where}: {message.removeprefix('Value error, ')}"
    if declared is not None:
        return f"{where}: got {shown}; expected {declared.accepts()}{hint}"
    return f"{where}: got {shown}; {message.removeprefix('Value error, ')}"


def build(cls: type, values: dict[str, Any], name_of: Callable[[str], str] = str) -> Any:
    """``cls(**values)``, or :class:`ConfigError` with one line naming the setting."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(problem(exc, name_of, all_declared(cls), values)) from None


def check_value(declared: Declared, value: Any) -> Any:
    """One field's value checked as its class would check it; raises SettingValueError
    saying what it accepts (sweep axes check each listed value this way)."""
    annotation = declared.annotation  # carries the field's bounds
    adapter = TypeAdapter(annotation, config=STRICT if _is_plain(annotation) else None)
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise SettingValueError(f"expected {declared.accepts()}") from None


def _is_plain(annotation: Any) -> bool:
    """TypeAdapter takes a config only for types that have none of their own."""
    return not hasattr(annotation, "__pydantic_config__")

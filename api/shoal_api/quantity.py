"""Kubernetes resource quantities and Go-style durations, parsed to integers.

The scheduler adds and compares integers (millicores, bytes, milliseconds), never strings, so
parsing happens once at the edge. Patterns are exported so that the CRD schema and the pydantic
models reject the same strings.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

# Non-negative quantities only: a negative request or limit is never meaningful here.
# Same grammar as k8s.io/apimachinery resource.Quantity minus the sign.
QUANTITY_PATTERN = r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
# Go time.ParseDuration subset: one or more <number><unit> terms, e.g. 500ms, 2s, 1m30s.
DURATION_PATTERN = r"^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$"

_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_TERM_RE = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ns|us|ms|s|m|h)")

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_DURATION_UNITS_MS: dict[str, Decimal] = {
    "ns": Decimal("1e-6"),
    "us": Decimal("1e-3"),
    "ms": Decimal(1),
    "s": Decimal(1000),
    "m": Decimal(60_000),
    "h": Decimal(3_600_000),
}


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("50m", "64Mi", "1Gi", "2", "1.5", "1e3") to an exact Decimal."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid quantity {value!r}: must not be negative")
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid quantity {value!r}")
        return Decimal(str(value))
    text = value.strip()
    if not _QUANTITY_RE.fullmatch(text):
        raise ValueError(f"invalid quantity {value!r}: expected e.g. 50m, 64Mi, 1Gi, 2 or 1.5")
    number, suffix = _split_quantity(text)
    try:
        return Decimal(number) * suffix
    except InvalidOperation as exc:  # pragma: no cover - the regex already rules this out
        raise ValueError(f"invalid quantity {value!r}") from exc


def _split_quantity(text: str) -> tuple[str, Decimal]:
    # Exponent forms ("1e3") end in a digit, suffixed forms in a letter: no ambiguity.
    for width in (2, 1):
        suffix = text[-width:]
        if suffix.isalpha() and suffix in _SUFFIXES:
            return text[:-width], _SUFFIXES[suffix]
    return text, Decimal(1)


def parse_cpu_millicores(value: str | int | float) -> int:
    """CPU quantity to millicores, rounded up like the kubelet does ("50m" -> 50, "1.5" -> 1500)."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def parse_memory_bytes(value: str | int | float) -> int:
    """Memory quantity to bytes, rounded up ("64Mi" -> 67108864, "1G" -> 10**9)."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def parse_duration_ms(value: str) -> int:
    """Go-style duration ("500ms", "2s", "1m30s") to whole milliseconds, rounded up."""
    text = value.strip()
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 2s, 1m or 1m30s")
    total = sum(
        (Decimal(number) * _DURATION_UNITS_MS[unit] for number, unit in _DURATION_TERM_RE.findall(text)),
        Decimal(0),
    )
    return int(total.to_integral_value(rounding=ROUND_CEILING))


def parse_duration_seconds(value: str) -> float:
    """Go-style duration to seconds (float), for APIs that want seconds."""
    return parse_duration_ms(value) / 1000


def format_memory(num_bytes: int) -> str:
    """Render bytes as the largest exact binary quantity ("67108864" -> "64Mi"), for messages."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIXES[suffix])
        if num_bytes and num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def format_cpu(millicores: int) -> str:
    """Render millicores as a quantity ("1500" -> "1500m", "2000" -> "2")."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"

"""Parse sizes ("2 GB") and durations ("1h30m") from configs. Standard library only: the pilot uses it."""

from __future__ import annotations

import re
from typing import Union

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_FACTORS_MB = {
    "": 1.0,
    "B": 1.0 / 1024 / 1024,
    "K": 1.0 / 1024,
    "KB": 1.0 / 1024,
    "KIB": 1.0 / 1024,
    "KI": 1.0 / 1024,
    "M": 1.0,
    "MB": 1.0,
    "MIB": 1.0,
    "MI": 1.0,
    "G": 1024.0,
    "GB": 1024.0,
    "GIB": 1024.0,
    "GI": 1024.0,
    "T": 1024.0 * 1024,
    "TB": 1024.0 * 1024,
    "TIB": 1024.0 * 1024,
    "TI": 1024.0 * 1024,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_DURATION_FACTORS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([KMGTkmgt][iI]?[bB]?|[bB])?\s*$"
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*[dhmsDHMS]\s*)+$|^\s*\d+(\.\d+)?\s*$"


def parse_size_mb(value: Union[str, int, float]) -> int:
    """Return a size in MiB; bare numbers are MiB (HTCondor's default unit), "2 GB" is 2048."""
    if isinstance(value, bool):
        raise ValueError(f'expected a size like "2 GB", got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f'expected a size like "2 GB", got {value!r}')
        return int(round(value))
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f'expected a size like "2 GB", got "{value}"')
    number, unit = match.groups()
    return int(round(float(number) * _SIZE_FACTORS_MB[(unit or "").upper()]))


def parse_duration_s(value: Union[str, int, float]) -> int:
    """Return a duration in seconds; bare numbers are seconds, "1h30m" is 5400."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "2h" or "90m", got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f'expected a duration like "2h" or "90m", got {value!r}')
        return int(round(value))
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(round(float(text)))
    if not re.fullmatch(r"(\s*\d+(\.\d+)?\s*[dhmsDHMS])+\s*", text):
        raise ValueError(f'expected a duration like "2h" or "90m", got "{value}"')
    return int(round(sum(float(n) * _DURATION_FACTORS[u.lower()] for n, u in _DURATION_RE.findall(text))))


def parse_duration_s_float(value: Union[str, int, float]) -> float:
    """Like parse_duration_s but keeps fractions of a second for bare numbers (sampling intervals)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return float(parse_duration_s(value))

"""Job ClassAds in the ``condor_history -long`` text format: read several ads from one file, write one.

``classad2.parseAds`` is not safe on such text: ads with no blank line between them are silently merged into
one (later values win), a ``*** `` banner line makes it stop after the first ad, and a line it cannot parse
empties the ad without an error. So we split the text into one chunk per ad first (on blank lines and on
``*** `` banner lines), check every line looks like ``Name = value``, parse each chunk on its own with
``classad2.parseOne``, and check that every attribute of the chunk made it into the ad.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import classad2

from iceprod_dag.common.exceptions import ClassAdError

_ATTR_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=")
_BANNER = "***"


def split_ads(text: str) -> Iterator[tuple[int, str]]:
    """Chunks of text holding one ad each, with the 1-based line number each chunk starts on."""
    chunk: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(_BANNER):
            if chunk:
                yield start, "\n".join(chunk) + "\n"
                chunk = []
            continue
        if not chunk:
            start = number
        chunk.append(line)
    if chunk:
        yield start, "\n".join(chunk) + "\n"


def parse_ad(chunk: str, where: str = "<text>", first_line: int = 1) -> classad2.ClassAd:
    """One ad from its ``Name = value`` lines; a line that is not an attribute is an error naming it."""
    chunks = list(split_ads(chunk))
    if len(chunks) != 1:
        raise ClassAdError(f"{where}:{first_line}: expected one ClassAd, found {len(chunks)}")
    skipped, chunk = chunks[0]
    first_line += skipped - 1
    names: set[str] = set()
    for offset, line in enumerate(chunk.splitlines()):
        if line.lstrip().startswith("#"):
            continue
        match = _ATTR_LINE.match(line)
        if not match:
            raise ClassAdError(f"{where}:{first_line + offset}: not a 'Name = value' ClassAd line: {line!r}")
        names.add(match.group(1).lower())
    try:
        ad = classad2.parseOne(chunk, classad2.ParserType.Old)
    except Exception as exc:  # classad2 raises ClassAdException or ValueError depending on the input
        raise ClassAdError(f"{where}:{first_line}: cannot parse ClassAd: {exc}") from exc
    missing = names - {key.lower() for key in ad.keys()}
    if missing:
        for offset, line in enumerate(chunk.splitlines()):
            match = _ATTR_LINE.match(line)
            if match and match.group(1).lower() in missing:
                raise ClassAdError(f"{where}:{first_line + offset}: cannot parse ClassAd attribute: {line!r}")
    return ad


def parse_ads(text: str, where: str = "<text>") -> list[classad2.ClassAd]:
    """Every ad of a ``condor_history -long`` style text (ads separated by blank or ``*** `` lines)."""
    return [parse_ad(chunk, where, start) for start, chunk in split_ads(text)]


def read_ads(path: str | Path) -> list[classad2.ClassAd]:
    """Every ad of a ``condor_history -long`` style file."""
    path = Path(path)
    return parse_ads(path.read_text(encoding="utf-8", errors="replace"), str(path))


def _clean(value: Any) -> Any:
    """A Python value that classad2 renders as a one-line old-syntax literal."""
    if isinstance(value, str):
        # old ClassAd syntax has no line breaks inside strings
        return value.replace("\r\n", "\\n").replace("\n", "\\n")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    return value


def format_ad(attributes: Mapping[str, Any] | classad2.ClassAd) -> str:
    """One ad in ``condor_history -long`` form: ``Name = value`` lines sorted by name, then a blank line.

    Values may be str, int, float, bool, None (undefined), lists, dicts, or ``classad2.ExprTree`` for
    expressions; a ClassAd is written as it is.
    """
    if isinstance(attributes, classad2.ClassAd):
        ad = attributes
    else:
        ad = classad2.ClassAd({str(k): _clean(v) for k, v in attributes.items()})
    lines = sorted(line for line in ad.printOld().splitlines() if line.strip())
    return "\n".join(lines) + "\n\n"


def write_ad(
    path: str | Path, attributes: Mapping[str, Any] | classad2.ClassAd, append: bool = False
) -> None:
    """Write (or append) one ad to a file in ``condor_history -long`` form."""
    with open(path, "a" if append else "w", encoding="utf-8") as out:
        out.write(format_ad(attributes))


def _json_value(ad: classad2.ClassAd, key: str, value: Any) -> Any:
    if isinstance(value, classad2.ExprTree):
        return str(value)  # keep the expression as written: it is what condor_history shows
    if isinstance(value, classad2.Value):
        return None if value == classad2.Value.Undefined else "error"
    if isinstance(value, classad2.ClassAd):
        return {k: _json_value(value, k, value[k]) for k in value.keys()}
    if isinstance(value, list):
        return [_json_value(ad, key, v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def ad_to_dict(ad: classad2.ClassAd) -> dict[str, Any]:
    """The ad's attributes as JSON values; expressions become their text."""
    return {key: _json_value(ad, key, ad[key]) for key in sorted(ad.keys())}


#: attributes holding a Unix time that are not named ...Date or ...Time
_TIME_ATTRIBUTES = frozenset(
    {"enteredcurrentstatus", "shadowbday", "jobfinishedhookdone", "lastjobleaserenewal"}
)
#: a time attribute's value must look like a Unix time (after 1973): ...Time also names durations
_EPOCH_FLOOR = 100_000_000


def is_time_attribute(key: str, value: Any) -> bool:
    """True when an attribute holds a Unix time (QDate, JobStartDate, EnteredCurrentStatus...), to show as a date."""
    low = key.lower()
    named = low in _TIME_ATTRIBUTES or low.endswith(("date", "time"))
    return named and isinstance(value, int | float) and not isinstance(value, bool) and value >= _EPOCH_FLOOR


def display_value(value: Any) -> Any:
    """An evaluated attribute as condor_q shows it: ``undefined`` and ``error`` by name, other values as they are."""
    if isinstance(value, classad2.Value):
        return "undefined" if value == classad2.Value.Undefined else "error"
    return value

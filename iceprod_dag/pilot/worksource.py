"""Where a multi-job pilot gets its work: a small abstract interface and two simple implementations.

A WorkSource hands out one WorkItem at a time that fits the pilot's free resources, takes back the stats
record of each finished item, and says when no more work will come. The local site implements one; the
server API comes later. ``DirectoryWorkSource`` (a queue folder of JSON files) needs nothing but a shared
file system; ``ListWorkSource`` is in-memory (tests and benchmarks).
"""

from __future__ import annotations

import abc
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional

from iceprod_dag.pilot import record as records
from iceprod_dag.pilot.spec import Resources

log = logging.getLogger(__name__)


@dataclass
class WorkItem:
    """One attempt of one job to run: the same inputs as `pilot run`, plus an id the source knows it by."""

    spec: str
    job: int
    attempt: int = 0
    memory_mb: Optional[float] = None
    stats: Optional[str] = None
    logdir: Optional[str] = None
    id: str = ""
    #: when the item was queued (epoch seconds), for the record's queue time
    submitted: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "WorkItem":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class WorkSource(abc.ABC):
    """The contract between a multi-job pilot and whoever has work for it."""

    @abc.abstractmethod
    def claim(self, free: Resources) -> Optional[WorkItem]:
        """Hand out one item whose requirements fit ``free`` (None: nothing that fits right now)."""

    @abc.abstractmethod
    def report(self, item: WorkItem, record: Dict[str, Any]) -> None:
        """Take back the stats record of a finished item (success or failure)."""

    @abc.abstractmethod
    def finished(self) -> bool:
        """True when no more work will come: the pilot exits once its running jobs are done."""


class ListWorkSource(WorkSource):
    """In-memory: hands out the given items in order (first one that fits), keeps the records."""

    def __init__(self, items: Iterable[WorkItem], requirements: Any = None) -> None:
        self.items: List[WorkItem] = list(items)
        self.records: List[Dict[str, Any]] = []
        self._requirements = requirements or _SpecRequirements()

    def claim(self, free: Resources) -> Optional[WorkItem]:
        for i, item in enumerate(self.items):
            if self._requirements(item).fits_in(free):
                return self.items.pop(i)
        return None

    def report(self, item: WorkItem, record: Dict[str, Any]) -> None:
        self.records.append(record)

    def finished(self) -> bool:
        return not self.items


class DirectoryWorkSource(WorkSource):
    """A queue folder: ``queue/*.json`` items (WorkItem fields), claimed by renaming into ``claimed/``,
    reported into ``done/``. Producers write items atomically (temp name + rename) and create the
    ``closed`` marker when they will add no more; several pilots may share one folder."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.queue = os.path.join(root, "queue")
        self.claimed = os.path.join(root, "claimed")
        self.done = os.path.join(root, "done")
        self._requirements = _SpecRequirements()
        self._parsed: Dict[str, WorkItem] = {}  # queued files never change (written by rename): parse once

    def _ensure(self) -> None:
        for folder in (self.queue, self.claimed, self.done):
            os.makedirs(folder, exist_ok=True)

    def put(self, item: WorkItem, name: Optional[str] = None) -> str:
        """Queue one item (producer side); returns its id."""
        self._ensure()
        name = (
            name or item.id or f"{os.path.splitext(os.path.basename(item.spec))[0]}_{item.job}.{item.attempt}"
        )
        item.id = name
        tmp = os.path.join(self.root, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(item.to_dict(), handle)
        os.replace(tmp, os.path.join(self.queue, name + ".json"))
        return name

    def close(self) -> None:
        """Producer side: no more items will be queued."""
        self._ensure()
        open(os.path.join(self.root, "closed"), "w").close()

    def claim(self, free: Resources) -> Optional[WorkItem]:
        self._ensure()
        entries = sorted(e for e in os.listdir(self.queue) if e.endswith(".json"))
        for gone in set(self._parsed) - set(entries):
            del self._parsed[gone]
        for entry in entries:
            path = os.path.join(self.queue, entry)
            item = self._parsed.get(entry)
            if item is None:
                try:
                    with open(path, encoding="utf-8") as handle:
                        item = WorkItem.from_dict(json.load(handle))
                except (OSError, ValueError):
                    continue  # claimed by another pilot meanwhile
                item.id = item.id or entry[: -len(".json")]
                self._parsed[entry] = item
            if not self._requirements(item).fits_in(free):
                continue
            self._parsed.pop(entry, None)
            try:
                os.rename(path, os.path.join(self.claimed, entry))  # atomic: one pilot wins
            except OSError:
                continue
            return item
        return None

    def report(self, item: WorkItem, record: Dict[str, Any]) -> None:
        records.write(os.path.join(self.done, item.id + ".json"), record)
        try:
            os.unlink(os.path.join(self.claimed, item.id + ".json"))
        except OSError:
            pass

    def finished(self) -> bool:
        if not os.path.exists(os.path.join(self.root, "closed")):
            return False
        return (
            not any(e.endswith(".json") for e in os.listdir(self.queue))
            if os.path.isdir(self.queue)
            else True
        )


class _SpecRequirements:
    """Requirements of an item from its spec file (cached per path), for sources that only know specs."""

    def __init__(self) -> None:
        self.cache: Dict[str, Any] = {}

    def __call__(self, item: WorkItem) -> Resources:
        from iceprod_dag.common.exceptions import ConfigError
        from iceprod_dag.pilot import spec as specs

        if item.spec not in self.cache:
            try:
                self.cache[item.spec] = specs.load_spec(item.spec)
            except ConfigError:
                self.cache[item.spec] = None
        loaded = self.cache[item.spec]
        if loaded is None:
            return Resources(cpus=0)  # let the pilot claim it and record the config failure
        try:
            return specs.requirements(loaded, item.memory_mb, item.spec)
        except ConfigError:
            return Resources(cpus=0)

"""The validated, normalized form of a dataset config: what compile and the task specs are made from."""

from __future__ import annotations

import dataclasses
from typing import Any

from iceprod_dag.common.graph import topological_order


@dataclasses.dataclass(frozen=True)
class Module:
    """One program of a task."""

    name: str
    executable: str
    args: list[str]
    env: dict[str, str]


@dataclasses.dataclass(frozen=True)
class DataFile:
    """A file a task stages in or out."""

    url: str
    local: str
    direction: str
    transfer: str
    checksum: str | None = None
    prestage: bool = False


@dataclasses.dataclass(frozen=True)
class Requirements:
    """Resources of one job of a task, in HTCondor's units (MiB, seconds)."""

    cpus: int = 1
    #: no default here: the dataset schema's (config/dataset.schema.yaml), which the loader applies
    memory_mb: int = dataclasses.field(kw_only=True)
    disk_mb: int = 1024
    gpus: int = 0
    walltime_s: int = 3600
    os: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Task:
    """One step of every job."""

    name: str
    modules: list[Module]
    depends: list[str]
    requirements: Requirements
    retries: int
    priority: int
    category: str | None
    iterations: int
    parameters: dict[str, Any]
    data: list[DataFile]


@dataclasses.dataclass(frozen=True)
class PilotOptions:
    """Settings of the pilot wrapper."""

    memory_allowance: float = 0.25
    learn_factor: float = 1.5
    sample_interval_s: float = 1.0
    kill_grace_s: float = 5.0
    transfer_retries: int = 3
    stderr_tail_lines: int = 40


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A validated dataset."""

    name: str
    dataset_id: int
    description: str
    owner: str | None
    jobs: int
    priority: int
    parameters: dict[str, Any]
    categories: dict[str, int]  # category -> MAXJOBS
    site: str
    max_idle: int
    max_jobs: int
    pilot: PilotOptions
    tasks: list[Task]
    source: str | None = None  # the file it was loaded from
    prestage_storage: str | None = None
    prestage_parallel: int = 4

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def topological_tasks(self) -> list[Task]:
        """Tasks ordered so that every task follows the tasks it depends on (stable by declaration)."""
        by_name = {t.name: t for t in self.tasks}
        return [by_name[n] for n in topological_order({t.name: t.depends for t in self.tasks})]

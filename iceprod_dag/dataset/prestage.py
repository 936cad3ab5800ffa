"""File pre-staging: a layer of `prestage` nodes that copy inputs to the site's storage before jobs start.

A pure transformation of the dataset: every input marked ``prestage: true`` is copied, once per job, by a
synthetic ``prestage`` task whose pilot stages the original URL in (checksum verified) and stages it out to
``STORAGE/DATASET/$(job)/LOCAL``; the task that declared the input now reads that staged copy and depends
on ``prestage``. A failed copy is a stage_in failure of the prestage node, and DAGMan does not run the job's
dependent tasks. The ``prestage`` category bounds how many transfers run at once.
"""

from __future__ import annotations

import dataclasses

from iceprod_dag.dataset.model import DataFile, Dataset, Module, Requirements, Task

PRESTAGE_TASK = "prestage"
PRESTAGE_CATEGORY = "prestage"


def staged_url(dataset: Dataset, entry: DataFile) -> str:
    """Where the staged copy of an input lives (an expression resolved per job by the pilot)."""
    storage = (dataset.prestage_storage or "").rstrip("/")
    return f"{storage}/{dataset.name}/$(job)/{entry.local}"


def apply_prestage(dataset: Dataset) -> Dataset:
    """The dataset with its prestage layer; unchanged when no input asks to be prestaged."""
    copies: dict[str, DataFile] = {}
    tasks: list[Task] = []
    for task in dataset.tasks:
        data, staged = [], False
        for entry in task.data:
            if entry.prestage and entry.direction == "input":
                target = staged_url(dataset, entry)
                copies.setdefault(target, entry)
                data.append(dataclasses.replace(entry, url=target, prestage=False))
                staged = True
            else:
                data.append(entry)
        depends = [*task.depends, PRESTAGE_TASK] if staged else task.depends
        tasks.append(dataclasses.replace(task, data=data, depends=depends))
    if not copies:
        return dataset
    stage_data: list[DataFile] = []
    for target, entry in copies.items():
        stage_data.append(dataclasses.replace(entry, direction="input", transfer="yes", prestage=False))
        stage_data.append(
            DataFile(url=target, local=entry.local, direction="output", transfer="yes", checksum=None)
        )
    prestage = Task(
        name=PRESTAGE_TASK,
        modules=[Module(name="verify", executable="/bin/true", args=[], env={})],
        depends=[],
        requirements=Requirements(cpus=1, memory_mb=128, disk_mb=1024, walltime_s=3600),
        retries=max((t.retries for t in dataset.tasks), default=0),
        priority=0,
        category=PRESTAGE_CATEGORY,
        iterations=1,
        parameters={},
        data=stage_data,
    )
    categories = {**dataset.categories, PRESTAGE_CATEGORY: dataset.prestage_parallel}
    return dataclasses.replace(dataset, tasks=[prestage, *tasks], categories=categories)

"""The stats database schema: datasets, jobs (DAG nodes), attempts (every retry a row) and job ClassAds.

Conventions every reader can rely on:

- Times are Unix epoch seconds (UTC) stored as floats (``*_at`` columns); they sort, subtract and bucket
  (``floor(ended_at / 3600)``) the same way on SQLite and PostgreSQL.
- States are the string values of :class:`iceprod_dag.common.states.JobState` (``"pending"``, ``"running"``,
  ``"done"``, ``"failed"``...); failure categories are :class:`iceprod_dag.common.states.FailureCategory` values.
- Primary keys are local to one database. Natural keys identify rows across databases (``sync`` relies on
  them): a dataset is ``(site, run_dir)``, a job ``(dataset, node)``, an attempt ``(job, attempt)``, a job
  ClassAd ``(job, attempt)``.
- Foreign keys are named ``<table>_pk`` (``Job.dataset_pk``) so that they never clash with the IceProd
  dataset number ``Dataset.dataset_id`` of the contracts.
- Every table on ``Base`` is declared in this package: these, the accounts (``accounts``) and the report
  inbox (``inbox``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every table of the stats database."""


class Dataset(Base):
    """One submitted run of a dataset: a run folder on one site."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("site", "run_dir", name="uq_datasets_site_run_dir"),
        Index("ix_datasets_state_submitted", "state", "submitted_at"),
        Index("ix_datasets_owner_submitted", "owner", "submitted_at"),
        Index("ix_datasets_submitted", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    #: IceProd dataset number (``dataset_id`` of the contracts), if the dataset has one
    dataset_id: Mapped[int | None] = mapped_column(Integer, index=True)
    owner: Mapped[str | None] = mapped_column(String(255))
    site: Mapped[str] = mapped_column(String(255))
    #: absolute path of the run folder on the site's submit machine
    run_dir: Mapped[str] = mapped_column(String(4096))
    #: submitted, running, done, failed, suspended, cancelled
    state: Mapped[str] = mapped_column(String(32), default="submitted")
    submitted_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    #: number of jobs per task (``dataset.jobs``)
    jobs: Mapped[int | None] = mapped_column(Integer)
    #: the validated dataset (dataset.json), for display
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    job_rows: Mapped[list[Job]] = relationship(back_populates="dataset", passive_deletes=True)


class Job(Base):
    """One DAG node of a dataset run; its state is the state of its latest attempt."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("dataset_pk", "node", name="uq_jobs_dataset_node"),
        # every stats report rewrites each index holding state or updated_at (~2 us each on SQLite), so only
        # the job listing's seeks have one (webui.queries._SEEKABLE); other filters scan a bounded window
        Index("ix_jobs_dataset_state_updated", "dataset_pk", "state", "updated_at", "id"),
        Index("ix_jobs_dataset_updated", "dataset_pk", "updated_at", "id"),
        Index("ix_jobs_dataset_task_state", "dataset_pk", "task", "state"),
        Index("ix_jobs_updated", "updated_at", "id"),
        # partial: a job that never failed is not in it, so its reports leave it alone
        Index(
            "ix_jobs_failure_updated",
            "last_failure",
            "updated_at",
            "id",
            sqlite_where=text("last_failure IS NOT NULL"),
            postgresql_where=text("last_failure IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    #: DAG node name, ``<task>_<job>`` for compiled datasets
    node: Mapped[str] = mapped_column(String(255))
    #: task name and job index; None for nodes that are not task jobs (FINAL, hand-written DAG nodes)
    task: Mapped[str | None] = mapped_column(String(255))
    job_index: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32), default="pending")
    #: number of attempts recorded (started or finished)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: highest attempt number started or reported, -1 before the first
    last_attempt: Mapped[int] = mapped_column(Integer, default=-1)
    #: failure category of the latest failed attempt (None once an attempt succeeds)
    last_failure: Mapped[str | None] = mapped_column(String(32))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[float | None] = mapped_column(Float)
    site: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))

    dataset: Mapped[Dataset] = relationship(back_populates="job_rows")
    attempt_rows: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.attempt", passive_deletes=True
    )


class Attempt(Base):
    """One attempt (retry) of a job: the pilot's stats record, flattened."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("job_pk", "attempt", name="uq_attempts_job_attempt"),
        Index("ix_attempts_dataset_task", "dataset_pk", "task"),
        Index("ix_attempts_ended", "ended_at"),
        # no index on site or failure alone: no query filters attempts by them, and every report pays for each
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    #: copies of the job's dataset and task, so per-task statistics need no join
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    task: Mapped[str | None] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    #: running (started, no record yet), done or failed
    state: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    wall_s: Mapped[float | None] = mapped_column(Float)
    cpu_user_s: Mapped[float | None] = mapped_column(Float)
    cpu_sys_s: Mapped[float | None] = mapped_column(Float)
    cpu_efficiency: Mapped[float | None] = mapped_column(Float)
    peak_rss_mb: Mapped[float | None] = mapped_column(Float)
    peak_pss_mb: Mapped[float | None] = mapped_column(Float)
    avg_rss_mb: Mapped[float | None] = mapped_column(Float)
    peak_disk_mb: Mapped[float | None] = mapped_column(Float)
    peak_gpu_mem_mb: Mapped[float | None] = mapped_column(Float)
    avg_gpu_util: Mapped[float | None] = mapped_column(Float)
    request_cpus: Mapped[float | None] = mapped_column(Float)
    request_memory_mb: Mapped[float | None] = mapped_column(Float)
    request_disk_mb: Mapped[float | None] = mapped_column(Float)
    request_gpus: Mapped[float | None] = mapped_column(Float)
    request_walltime_s: Mapped[float | None] = mapped_column(Float)
    memory_limit_mb: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    pilot_exit_code: Mapped[int | None] = mapped_column(Integer)
    failure: Mapped[str | None] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255))
    site: Mapped[str | None] = mapped_column(String(255))
    os: Mapped[str | None] = mapped_column(String(255))
    python: Mapped[str | None] = mapped_column(String(64))
    #: last lines of the task's stderr, joined with newlines
    stderr_tail: Mapped[str | None] = mapped_column(Text)
    #: log paths relative to the run folder
    log_stdout: Mapped[str | None] = mapped_column(String(4096))
    log_stderr: Mapped[str | None] = mapped_column(String(4096))
    log_pilot: Mapped[str | None] = mapped_column(String(4096))
    transfers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    next_memory_mb: Mapped[float | None] = mapped_column(Float)
    #: failure triage (issue 14): what the pilot's limits were, how it measured, why it failed
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)
    #: cgroup, rusage, rusage_bound (an upper bound) or samples
    peak_memory_source: Mapped[str | None] = mapped_column(String(16))
    memory_lent_mb: Mapped[float | None] = mapped_column(Float)
    walltime_limit_s: Mapped[float | None] = mapped_column(Float)
    next_walltime_s: Mapped[float | None] = mapped_column(Float)
    next_disk_mb: Mapped[float | None] = mapped_column(Float)
    #: submitted -> started, where the site knows when it was submitted
    queue_s: Mapped[float | None] = mapped_column(Float)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    #: sha256 of the canonical JSON of the stats record: a repeated report with equal content is a no-op
    record_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[float | None] = mapped_column(Float)

    job: Mapped[Job] = relationship(back_populates="attempt_rows")


class JobAd(Base):
    """The job ClassAd of one finished attempt, as ``condor_history -long`` prints it."""

    __tablename__ = "job_ads"
    __table_args__ = (
        UniqueConstraint("job_pk", "attempt", name="uq_job_ads_job_attempt"),
        Index("ix_job_ads_cluster_proc", "cluster_id", "proc_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    cluster_id: Mapped[int | None] = mapped_column(Integer)
    proc_id: Mapped[int | None] = mapped_column(Integer)
    #: the ad in ``condor_history -long`` text form
    ad_text: Mapped[str] = mapped_column(Text)
    #: the ad's attributes evaluated to JSON values (expressions kept as their text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float | None] = mapped_column(Float)


#: every table, parents first (the order sync and tests walk them in)
TABLES = [Dataset.__table__, Job.__table__, Attempt.__table__, JobAd.__table__]

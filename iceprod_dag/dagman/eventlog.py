"""Write HTCondor's job event log (the nodes' log, <dag>.nodes.log) in the text format condor 23+ writes.

Each event is one ``os.write`` on a file opened with O_APPEND, so events from several writers never interleave
and a ``kill -9`` of the writer leaves a log that ``htcondor2.JobEventLog`` reads up to the last whole event.
The layout (tabs, column widths, ``...`` terminators, local-time stamps) copies logs written by a real pool.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCAL_HOST = "<127.0.0.1:0>"


@dataclasses.dataclass
class Usage:
    """Resources of one run, for the terminated/evicted events (Partitionable Resources table)."""

    user_cpu_s: float = 0.0
    sys_cpu_s: float = 0.0
    cpus_request: float = 1
    cpus_allocated: float | None = None
    cpus_usage: float | None = None
    memory_mb_usage: int | None = None  # peak RSS in MB (condor's MemoryUsage)
    memory_mb_request: int | None = None
    memory_mb_allocated: int | None = None
    disk_kb_usage: int | None = None
    disk_kb_request: int | None = None
    disk_kb_allocated: int | None = None
    gpus_request: int | None = None
    gpus_allocated: int | None = None
    time_execute_s: int | None = None
    bytes_sent: int = 0
    bytes_received: int = 0


def _ts(when: float | None) -> str:
    # condor writes local time without a zone; JobEventLog reads it back as local time
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if when is None else when))


def _cpu(seconds: float) -> str:
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"{days} {hours:02d}:{minutes:02d}:{s:02d}"


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


def _resources(u: Usage) -> list[str]:
    rows = [
        (
            "Cpus",
            u.cpus_usage,
            u.cpus_request,
            u.cpus_allocated if u.cpus_allocated is not None else u.cpus_request,
        ),
        ("Disk (KB)", u.disk_kb_usage, u.disk_kb_request, u.disk_kb_allocated),
        ("GPUs", None, u.gpus_request, u.gpus_allocated),
        ("Memory (MB)", u.memory_mb_usage, u.memory_mb_request, u.memory_mb_allocated),
    ]
    out = ["\tPartitionable Resources :    Usage  Request Allocated "]
    for name, usage, request, allocated in rows:
        if usage is None and request is None and allocated is None:
            continue
        out.append(f"\t   {name:<21}:{_num(usage):>9}{_num(request):>9}{_num(allocated):>10} ")
    if u.time_execute_s is not None:
        for name in ("TimeExecute (s)", "TimeSlotBusy (s)"):
            out.append(f"\t   {name:<21}:{_num(u.time_execute_s):>9}{'':>9}{'':>10} ")
    return out


class EventLogWriter:
    """Appends events to one job event log; cheap to keep open for a whole run."""

    def __init__(self, path: Path | str, submit_host: str = LOCAL_HOST) -> None:
        self.path = Path(path)
        self.submit_host = submit_host
        self._fd: int | None = None

    def _write(
        self, code: int, cluster: int, proc: int, when: float | None, head: str, body: list[str]
    ) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        text = f"{code:03d} ({cluster:03d}.{proc:03d}.000) {_ts(when)} {head}\n"
        text += "".join(line + "\n" for line in body) + "...\n"
        os.write(self._fd, text.encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> EventLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the events -------------------------------------------------------------------------------------------------
    def submit(self, cluster: int, proc: int = 0, node: str | None = None, when: float | None = None) -> None:
        """000: the job entered the queue; ``node`` becomes the DAGNodeName read back by JobEventLog."""
        body = [f"    DAG Node: {node}"] if node else []
        self._write(0, cluster, proc, when, f"Job submitted from host: {self.submit_host}", body)

    def execute(
        self,
        cluster: int,
        proc: int = 0,
        host: str = LOCAL_HOST,
        slot: str | None = None,
        props: dict[str, object] | None = None,
        when: float | None = None,
    ) -> None:
        """001: the job started; ``props`` (Cpus, Memory...) become the event's ExecuteProps."""
        body = [f"\tSlotName: {slot}"] if slot else []
        for key, value in (props or {}).items():
            body.append(f'\t{key} = "{value}"' if isinstance(value, str) else f"\t{key} = {value}")
        self._write(1, cluster, proc, when, f"Job executing on host: {host}", body)

    def image_size(
        self, cluster: int, proc: int, memory_mb: int, rss_kb: int, when: float | None = None
    ) -> None:
        """006: memory use seen so far (MemoryUsage in MB, ResidentSetSize in KB)."""
        body = [f"\t{memory_mb}  -  MemoryUsage of job (MB)", f"\t{rss_kb}  -  ResidentSetSize of job (KB)"]
        self._write(6, cluster, proc, when, f"Image size of job updated: {rss_kb}", body)

    def terminated(
        self,
        cluster: int,
        proc: int = 0,
        return_value: int | None = None,
        signal: int | None = None,
        usage: Usage | None = None,
        when: float | None = None,
    ) -> None:
        """005: the job ended, normally with ``return_value`` or killed by ``signal`` (exactly one is given)."""
        if (return_value is None) == (signal is None):
            raise ValueError("terminated() needs exactly one of return_value and signal")
        u = usage or Usage()
        if signal is None:
            body = [f"\t(1) Normal termination (return value {return_value})"]
            how = f"exit-code {return_value}"
        else:
            body = [f"\t(0) Abnormal termination (signal {signal})", "\t(0) No core file"]
            how = f"signal {signal}"
        remote = f"Usr {_cpu(u.user_cpu_s)}, Sys {_cpu(u.sys_cpu_s)}"
        zero = "Usr 0 00:00:00, Sys 0 00:00:00"
        body += [
            f"\t\t{remote}  -  Run Remote Usage",
            f"\t\t{zero}  -  Run Local Usage",
            f"\t\t{remote}  -  Total Remote Usage",
            f"\t\t{zero}  -  Total Local Usage",
            f"\t{u.bytes_sent}  -  Run Bytes Sent By Job",
            f"\t{u.bytes_received}  -  Run Bytes Received By Job",
            f"\t{u.bytes_sent}  -  Total Bytes Sent By Job",
            f"\t{u.bytes_received}  -  Total Bytes Received By Job",
            *_resources(u),
            "",
            f"\tJob terminated of its own accord at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() if when is None else when))} with {how}.",
        ]
        self._write(5, cluster, proc, when, "Job terminated.", body)

    def evicted(
        self, cluster: int, proc: int = 0, usage: Usage | None = None, when: float | None = None
    ) -> None:
        """004: the job was stopped and goes back to idle (not a termination)."""
        u = usage or Usage()
        remote = f"Usr {_cpu(u.user_cpu_s)}, Sys {_cpu(u.sys_cpu_s)}"
        body = [
            "\t(0) CPU times",
            f"\t\t{remote}  -  Run Remote Usage",
            "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage",
            f"\t{u.bytes_sent}  -  Run Bytes Sent By Job",
            f"\t{u.bytes_received}  -  Run Bytes Received By Job",
            *_resources(u),
        ]
        self._write(4, cluster, proc, when, "Job was evicted.", body)

    def aborted(self, cluster: int, proc: int = 0, reason: str = "", when: float | None = None) -> None:
        """009: the job was removed from the queue."""
        self._write(9, cluster, proc, when, "Job was aborted.", [f"\t{reason or 'Reason unspecified'}"])

    def held(
        self,
        cluster: int,
        proc: int = 0,
        reason: str = "",
        code: int = 1,
        subcode: int = 0,
        when: float | None = None,
    ) -> None:
        """012: the job was put on hold (HoldReasonCode/HoldReasonSubCode)."""
        body = [f"\t{reason or 'Reason unspecified'}", f"\tCode {code} Subcode {subcode}"]
        self._write(12, cluster, proc, when, "Job was held.", body)

    def released(self, cluster: int, proc: int = 0, reason: str = "", when: float | None = None) -> None:
        """013: a held job was released."""
        self._write(13, cluster, proc, when, "Job was released.", [f"\t{reason or 'Reason unspecified'}"])

    def post_script_terminated(
        self,
        cluster: int,
        proc: int,
        node: str,
        return_value: int | None = None,
        signal: int | None = None,
        when: float | None = None,
    ) -> None:
        """016: DAGMan's record of a node's POST script ending (ReturnValue or TerminatedBySignal, DAGNodeName)."""
        if signal is None:
            how = f"\t(1) Normal termination (return value {return_value})"
        else:
            how = f"\t(0) Abnormal termination (signal {signal})"
        self._write(16, cluster, proc, when, "POST Script terminated.", [how, f"    DAG Node: {node}"])

"""The local site's executor: processes (iceprod_dag.dagman.engine.processes), and pilot jobs through
long-lived multi-job pilot processes (pilotexec.py), which save an interpreter start per job."""

from __future__ import annotations

import select
import time
from typing import Any

from iceprod_dag.dagman.engine.executor import Exit, Launch
from iceprod_dag.dagman.engine.processes import ProcessExecutor
from iceprod_dag.plugins.local.pilotexec import PilotClient, work_item


class LocalExecutor(ProcessExecutor):
    """Processes, with the jobs that run our pilot handed to pilot processes instead."""

    def __init__(
        self,
        cpus: int | None = None,
        memory_mb: int | None = None,
        kill_grace_s: float = 5.0,
        use_pilot: bool = True,
        pilot_procs: int | None = None,
        pilot_dir: str = ".",
        pilot_log: str | None = None,
    ) -> None:
        super().__init__(cpus, memory_mb, kill_grace_s)
        self._use_pilot = use_pilot
        self.pilot_procs = pilot_procs or max(1, min(self.cpus, 2))
        self._pilots: dict[int, PilotClient] = {}  # stdout fd -> its pilot
        self._pilot_dir = pilot_dir
        self._pilot_log = pilot_log
        self._in_pilot: dict[str, tuple[Launch, float, PilotClient]] = {}
        #: stats records of pilot jobs that ended, by key, for the recorder to pop
        self.records: dict[str, dict[str, Any]] = {}

    def active(self) -> int:
        return super().active() + len(self._in_pilot)

    def start(self, launch: Launch) -> None:
        if self._use_pilot and launch.info.get("pilot") and self._start_in_pilot(launch):
            return
        super().start(launch)

    def _start_in_pilot(self, launch: Launch) -> bool:
        item = work_item(launch.argv, launch.cwd, launch.key)
        if item is None:
            return False
        if not self._pilots:
            for _ in range(self.pilot_procs):
                client = PilotClient(self.cpus, self.memory_mb, self._pilot_dir, self._pilot_log)
                self._pilots[client.fd] = client
                self._poll.register(client.fd, select.EPOLLIN)
        client = min(self._pilots.values(), key=lambda c: c.running)
        self._in_pilot[launch.key] = (launch, time.time(), client)
        self.free_cpus -= launch.cpus
        self.free_memory_mb -= launch.memory_mb
        client.send(item)
        return True

    def _pilot_exits(self, fd: int) -> list[Exit]:
        client = self._pilots[fd]
        out = []
        for key, rec in client.read():
            if not key:  # the pilot process died: its jobs are lost, report them failed
                self._poll.unregister(fd)
                del self._pilots[fd]
                for k, (_launch, start, c) in list(self._in_pilot.items()):
                    if c is client:
                        out.append(self._pilot_exit(k, start, None, "the pilot process died"))
                continue
            out.append(self._pilot_exit(key, time.time(), rec, None))
        return out

    def _pilot_exit(self, key: str, start: float, rec: dict[str, Any] | None, error: str | None) -> Exit:
        launch, started, _ = self._in_pilot.pop(key)
        self.free_cpus += launch.cpus
        self.free_memory_mb += launch.memory_mb
        if rec is None:
            return Exit(key, 0, None, None, started, time.time(), error=error)
        self.records[key] = rec
        code = rec.get("pilot_exit_code")
        return Exit(
            key=key,
            pid=0,
            exit_code=8 if code is None else int(code),  # exitcodes.PILOT_ERROR: a record without its verdict
            signal=None,
            start=float(rec.get("start") or started),
            end=float(rec.get("end") or time.time()),
            user_cpu=float(rec.get("cpu_user_s") or 0.0),
            sys_cpu=float(rec.get("cpu_sys_s") or 0.0),
            maxrss_kb=int((rec.get("peak_rss_mb") or 0.0) * 1024),
        )

    def _before_poll(self) -> None:
        for client in self._pilots.values():
            client.flush()

    def _other_ready(self, fd: int) -> list[Exit] | None:
        return self._pilot_exits(fd) if fd in self._pilots else None

    def close(self) -> None:
        for client in self._pilots.values():
            client.close()
        super().close()

    def _signal_all(self, sig: int) -> None:
        for client in self._pilots.values():
            client.kill(sig)
        super()._signal_all(sig)

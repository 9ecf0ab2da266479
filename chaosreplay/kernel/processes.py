"""A node's processes: the table of them and the loop that shares the one vCPU among them.

A node starts with one process, its program (pid 1000, parent 1: an init outside the node
that reaps orphans). The first fork gives the node a `ProcessTable`. Every process is a
`GuestProcess` with its own VM (fork copies the parent's memory, vmm_vm_clone), threads,
descriptor table and signal handlers; all of them share the node's disk, network stack,
clock, seeded streams and output. One runs at a time: the node loop hands the vCPU to a
process with a ready task and keeps it there until its tasks all block, it ends, or its
time slice ends while another process is ready; then it goes round the ready processes in
pid order. Virtual time passes only while one runs, so passing the clock on keeps it exact.

A process that ends is a zombie (its VM freed at once) until its parent waits for it; the
orphans of a process that ends go to init, which reaps them. The node's first process
ending ends the node: every other process is killed with it.
"""

from __future__ import annotations

import dataclasses
import signal
from typing import TYPE_CHECKING, Any

from chaosreplay.events import EventKind
from chaosreplay.kernel.fs.files import FdTable, Refs
from chaosreplay.kernel.fs.waiters import Notifiable, WaitQueue
from chaosreplay.kernel.mm import page_cache

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess, Status

INIT_PID = 1  # the parent of the node's program and of every orphan
MAX_PROCESSES = 512  # live and zombie processes per node: a fork bomb stops at EAGAIN
SA_NOCLDSTOP, SA_NOCLDWAIT = 0x1, 0x2
CLD_STOPPED, CLD_CONTINUED = 5, 6


class ChildEvents:
    """What wait4 and waitid sleep on: a child of the process ended."""

    def __init__(self) -> None:
        self.queue = WaitQueue()

    def register(self, party: Notifiable, mask: int) -> None:
        self.queue.register(party, mask)

    def unregister(self, party: Notifiable) -> None:
        self.queue.unregister(party)

    def next_change_ns(self, p: GuestProcess) -> int | None:
        return None  # only a child's end changes it

    def notify(self, at_ns: int) -> None:
        self.queue.notify(1, at_ns)


def wait_status(p: GuestProcess) -> int:
    """The wait status word of an ended process: exit code << 8, or the killing signal."""
    from chaosreplay.kernel.process import Status

    if p.status is Status.EXITED:
        return (p.exit_code or 0) << 8
    return p.crash.signal & 0x7F if p.crash is not None else signal.SIGKILL


class ProcessTable:
    """Every process of one node, live or zombie, by pid."""

    def __init__(self, init: GuestProcess) -> None:
        self.init = init
        self.procs: dict[int, GuestProcess] = {init.pid: init}
        self.last_pid = init.pid  # the process that had the vCPU last (round robin)
        self.freed_exits = 0  # VM exits of processes whose VMs are gone (the watchdog's)

    def live(self) -> list[GuestProcess]:
        from chaosreplay.kernel.process import Status

        return [p for p in self.procs.values() if p.status is Status.RUNNING]

    def children(self, p: GuestProcess) -> list[GuestProcess]:
        """p's children, live and zombie, in pid order."""
        return [c for c in self.procs.values() if c.ppid == p.pid and c is not p]

    def others_ready(self, p: GuestProcess, now_ns: int) -> bool:
        """Whether a process other than p could use the vCPU now."""
        return any(q is not p and _ready(q, now_ns) for q in self.live())

    def earliest_other_ready(self, p: GuestProcess, now_ns: int) -> int | None:
        """The first virtual time at or after now_ns at which a process other than p could
        use the vCPU, while p runs alone (None: only p itself could wake one)."""
        times = [now_ns if _ready(q, now_ns) else _wake_time(q)
                 for q in self.live() if q is not p]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def others_alive(self, p: GuestProcess) -> bool:
        return any(q is not p for q in self.live())

    def exit_count(self) -> int:
        """VM exits of every process so far: progress for the hang watchdog.

        The watchdog calls this from its own thread while the node runs: a process the
        node loop is releasing may already have no VM (its exits then move to
        freed_exits), so each VM is read once and a missing one counts nothing."""
        from chaosreplay.kernel.process import Status

        total = self.freed_exits
        for p in list(self.procs.values()):  # one C-level copy: the loop may change procs
            if p.status is Status.RUNNING:
                total += p.own_exit_count()  # 0 once its VM is gone
        return total

    def others_in_order(self, p: GuestProcess) -> list[GuestProcess]:
        """Every process but p, live and zombie, in pid order."""
        return [q for q in self.procs.values() if q is not p]

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, refs: Refs, tables: dict[int, dict[str, Any]]) -> dict[str, Any]:
        """The table as plain data: every process but the node's program (whose state is
        the rest of the kernel state), each live one's descriptors by their index in refs
        (`tables`: FdTable.slots_state() by pid)."""
        from chaosreplay.kernel.syscalls.files import process_files_state

        rows = []
        for q in self.others_in_order(self.init):
            crash = q.crash
            row: dict[str, Any] = {
                "pid": q.pid, "ppid": q.ppid, "pgid": q.pgid, "sid": q.sid,
                "exit_signal": q.exit_signal, "status": q.status.value,
                "exit_code": q.exit_code,
                "crash": None if crash is None else [crash.signal, crash.vector, crash.rip,
                                                     crash.symbol, crash.fault_address,
                                                     crash.reason]}
            if q.alive:
                row["process"] = q.process_state(refs)  # (its stop, if any, too)
                row["files"] = {**tables[q.pid], **process_files_state(q, refs)}
            rows.append(row)
        return {"last_pid": self.last_pid, "freed_exits": self.freed_exits, "processes": rows}

    @classmethod
    def load(cls, init: GuestProcess, data: dict[str, Any], refs: Refs) -> ProcessTable:
        """Rebuild init's table from save() output (checked by kernel.state_check): each
        live process gets a fresh VM, which the caller fills from the checkpoint."""
        from chaosreplay.kernel.mm.address_space import AddressSpace
        from chaosreplay.kernel.process import Crash, Status
        from chaosreplay.kernel.syscalls.files import load_process_files_state
        from chaosreplay.vm.vmm import Vm

        table = cls(init)
        init.table = table
        table.last_pid, table.freed_exits = data["last_pid"], data["freed_exits"]
        for row in data["processes"]:
            q = init.sibling(row["pid"])
            q.ppid, q.pgid, q.sid = row["ppid"], row["pgid"], row["sid"]
            q.exit_signal = row["exit_signal"]
            if "process" in row:
                q.vm = Vm(init.config.mem_size)
                q.fast = q.fast_path_of(q.vm)
                q.vdso_address = q.vdso_of(q.vm)
                q.regs = q.vm.regs
                q.space = AddressSpace(q.vm)
                q.space.oom_kill = q._oom_kill
                q.space.drop_hold = q._drop_hold
                q.load_process_state(row["process"])
                q.sites = q.space.code.sites
                q.files = FdTable.adopt(row["files"], refs)
                q.space.adopt_files(refs.descriptions, f"node{init.node_id}.kernel.processes"
                                    f"[pid {q.pid}].vmas")
                load_process_files_state(q, row["files"], refs)
            else:  # a zombie: its wait status is all that is left
                q.vm = q.space = q.regs = None  # type: ignore[assignment]
                q.files = FdTable()
            q.status, q.exit_code = Status(row["status"]), row["exit_code"]
            q.crash = None if row["crash"] is None else Crash(*row["crash"])
            table.procs[q.pid] = q
        return table

    # -- running ---------------------------------------------------------------------------
    def run(self, deadline_ns: int | None) -> Status:
        """The node's run(): processes take turns until all block, the node's program
        ends, or virtual time passes deadline_ns."""
        from chaosreplay.kernel.process import Status

        init = self.init
        if init.status is not Status.RUNNING:
            return init.status
        now = init.vtime_ns
        if init.wake_at_ns is not None:
            now = max(now, init.wake_at_ns)
            init.wake_at_ns = None
        first, gave_way = True, False
        while True:
            ready = [p for p in self.live() if _ready(p, now)]
            if not ready:
                init.vtime_ns = now
                return self._sleep(now)
            if not first and deadline_ns is not None and now > deadline_ns:
                init.vtime_ns = now
                return Status.RUNNING
            first = False
            proc = self._choose(ready, gave_way)
            if proc.pid != self.last_pid:
                proc.current.ran_since_ns = now  # a fresh time slice
            self.last_pid = proc.pid
            proc.vtime_ns = now
            proc.wake_at_ns = None
            status = proc.run_process(deadline_ns)
            if proc.space is not None and proc.space.shares:
                page_cache.flush(proc)  # another process may run next: it sees the stores
            now = proc.vtime_ns
            proc.wake_at_ns = None  # the node loop works out wake-ups from the tasks
            if proc is init:
                if status in (Status.EXITED, Status.CRASHED, Status.HUNG):
                    self.kill_all("the node's program ended")
                    return status
            elif status is Status.HUNG:  # a child spinning without exits hangs the node
                init.vtime_ns = now
                init.status = Status.HUNG
                init.emit(EventKind.CRASH, signal=0, reason="hang", pid=proc.pid)
                self.kill_all("the node hung")
                return Status.HUNG
            elif status in (Status.EXITED, Status.CRASHED):
                self.release(proc)
                continue
            gave_way = proc.yielded
            if status is Status.RUNNING:
                if proc.yielded:
                    proc.yielded = False
                    continue
                init.vtime_ns = now
                return Status.RUNNING

    def _choose(self, ready: list[GuestProcess], gave_way: bool) -> GuestProcess:
        """Round robin: the first ready process after the one that ran last, by pid (under
        the random policy, one the node's scheduling stream draws)."""
        last = self.procs.get(self.last_pid)
        if last is not None and last in ready and not gave_way:
            return last  # resuming after a deadline or a preempt
        scheduler = self.init.scheduler
        if scheduler.random:  # the seed picks which process goes on: interleavings vary
            return ready[scheduler.draw(len(ready))]
        after = [p for p in ready if p.pid > self.last_pid]
        return after[0] if after else ready[0]

    def _sleep(self, now: int) -> Status:
        """No process can run: the node sleeps until the first wakes, or is deadlocked."""
        from chaosreplay.kernel.process import Status

        init = self.init
        wakes = [w for w in (_wake_time(p) for p in self.live()) if w is not None]
        if not wakes:
            waits = []
            for p in self.live():
                for task in p.tasks.values():
                    reason = task.waiting.reason if task.waiting else "a wait"
                    if p.stopped:
                        reason = f"a stop by signal {p.stop_report}"
                    waits.append(f"pid {p.pid} tid {task.tid} in {reason}")
            init._die(signal.SIGKILL, 0, 0,
                      "deadlock: every process blocks forever (" + ", ".join(waits) + ")")
            self.kill_all("deadlock")
            return init.status
        init.wake_at_ns = max(min(wakes), now)
        return Status.BLOCKED

    # -- job control -----------------------------------------------------------------------
    def stop(self, proc: GuestProcess, signo: int) -> None:
        """A stop signal's default action: proc's threads stop until a SIGCONT; its parent
        hears of it (SIGCHLD with CLD_STOPPED unless SA_NOCLDSTOP, wait's WUNTRACED)."""
        proc.stopped = True
        proc.stop_report = signo
        proc.emit(EventKind.PROCESS_STOP, pid=proc.pid, signal=signo)
        self._tell_parent(proc, CLD_STOPPED, signo)

    def resume(self, proc: GuestProcess, report: bool) -> None:
        """SIGCONT (report: the parent hears of it, CLD_CONTINUED and WCONTINUED) or
        SIGKILL ends a stop."""
        proc.stopped = False
        proc.stop_report = signal.SIGCONT if report else None
        proc.emit(EventKind.PROCESS_CONTINUE, pid=proc.pid)
        if report:
            self._tell_parent(proc, CLD_CONTINUED, signal.SIGCONT)

    def _tell_parent(self, proc: GuestProcess, code: int, signo: int) -> None:
        from chaosreplay.kernel.signalling import send_to_process
        from chaosreplay.kernel.signals.siginfo import child_info

        parent = self.procs.get(proc.ppid)
        if parent is None or not parent.alive:
            return
        if not parent.signals.actions.get(signal.SIGCHLD).flags & SA_NOCLDSTOP:
            send_to_process(parent, child_info(code, proc.pid, 0, signo, 0, 0))
        parent.child_events.notify(parent.vtime_ns)

    # -- ends ------------------------------------------------------------------------------
    def process_ended(self, proc: GuestProcess) -> None:
        """A process other than the node's program exited or was killed: tell its
        parent (SIGCHLD, wait4), hand its children to init, close its descriptors."""
        from chaosreplay.kernel.signalling import send_to_process
        from chaosreplay.kernel.signals.siginfo import child_exit_info

        status = wait_status(proc)
        fields: dict[str, object] = {"pid": proc.pid}
        if proc.crash is None:
            fields["code"] = proc.exit_code
        else:
            fields["signal"] = proc.crash.signal
            fields["reason"] = proc.crash.describe()
        proc.emit(EventKind.PROCESS_EXIT, **fields)
        for fd, _ in proc.files.items():
            proc.files.close(proc, fd)
        for child in self.children(proc):
            self._orphan(child)
        parent = self.procs.get(proc.ppid)
        if parent is None or not parent.alive:
            self._orphan(proc)
            return
        action = parent.signals.actions.get(signal.SIGCHLD)
        if action.handler == signal.SIG_IGN or action.flags & SA_NOCLDWAIT:
            proc.reaped = True  # nobody will wait: no zombie (Linux autoreaps)
            del self.procs[proc.pid]
        if proc.exit_signal:
            info = dataclasses.replace(child_exit_info(proc.pid, 0, status, 0, 0),
                                       signo=proc.exit_signal)
            send_to_process(parent, info)
        parent.child_events.notify(parent.vtime_ns)

    def _orphan(self, child: GuestProcess) -> None:
        """A child whose parent ended: init adopts it, and reaps it if it ended too."""
        child.ppid = INIT_PID
        if not child.alive:
            self.reap(child)

    def reap(self, child: GuestProcess) -> None:
        """wait4 collected a zombie: it is gone."""
        child.reaped = True
        self.procs.pop(child.pid, None)

    def release(self, proc: GuestProcess) -> None:
        """An ended process's VM goes (its exits still count for the watchdog)."""
        if proc.vm is not None and proc is not self.init:
            self.freed_exits += proc.own_exit_count()
            proc.drop_vm()

    def kill_all(self, reason: str) -> None:
        """The node ends: every process but its program dies with it."""
        for proc in list(self.procs.values()):
            if proc is self.init:
                continue
            if proc.alive:
                proc.vtime_ns = self.init.vtime_ns
                proc.kill_quietly(reason)
            self.release(proc)
            self.procs.pop(proc.pid, None)


def _ready(p: GuestProcess, now: int) -> bool:
    """Whether p has a task that can run at now (or a timer of its due); a stopped
    process has none."""
    if p.stopped:
        return False
    if p.timer_due_ns is not None and p.timer_due_ns <= now:
        return True
    return any(t.ready(now) for t in p.tasks.values())


def _wake_time(p: GuestProcess) -> int | None:
    if p.stopped:
        return None  # only another process's SIGCONT ends a stop
    wakes = [w for w in (t.wake_time() for t in p.tasks.values()) if w is not None]
    if p.timer_due_ns is not None:
        wakes.append(p.timer_due_ns)
    return min(wakes) if wakes else None

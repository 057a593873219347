"""Keeping `make run`'s processes running: a process that dies is started again, after a pause
that doubles with each crash that follows a start closely (0.5 s up to 30 s), and the app
stops only when one keeps crashing (MAX_FAST_CRASHES in a row, each within STABLE_AFTER seconds
of its start) or on Ctrl-C / SIGTERM. A member may name others to restart after it: a restarted
Redis has lost what it held since its last snapshot, so the inference worker starts again too
and rebuilds its queue from the database."""

import time
from dataclasses import dataclass

BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
STABLE_AFTER = 30.0  # seconds a process must run for its earlier crashes to be forgotten
MAX_FAST_CRASHES = 5


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


@dataclass
class Member:
    name: str
    start: object  # () -> a started process (poll(), pid)
    stop: object  # (process) -> None, stopping it and anything it started
    then: tuple = ()  # names of members to restart after this one
    process: object = None
    started: float = 0.0
    fast_crashes: int = 0
    due: float | None = None  # when a dead process is started again

    def launch(self) -> None:
        self.process, self.started, self.due = self.start(), time.monotonic(), None


class Supervisor:
    def __init__(self):
        self.members: list[Member] = []

    def add(self, name: str, start, stop, then=(), running=None) -> Member:
        """Supervise a process: `running` if it has been started already, else `start()`'s."""
        member = Member(name, start, stop, tuple(then))
        if running is None:
            member.launch()
        else:
            member.process, member.started = running, time.monotonic()
        self.members.append(member)
        return member

    def check(self) -> None:
        """Notice dead members and start those whose pause is over; SystemExit when one keeps
        crashing."""
        now = time.monotonic()
        for member in self.members:
            if member.due is None and member.process.poll() is not None:
                code = member.process.poll()
                member.stop(member.process)  # what it started (a pool, gunicorn's workers) goes too
                member.fast_crashes = (
                    member.fast_crashes + 1 if now - member.started < STABLE_AFTER else 1
                )
                if member.fast_crashes > MAX_FAST_CRASHES:
                    raise SystemExit(
                        f"the {member.name} crashed {member.fast_crashes} times in a row, each within "
                        f"{STABLE_AFTER:g} s of its start; stopping the app"
                    )
                pause = min(BACKOFF_MAX, BACKOFF_START * 2 ** (member.fast_crashes - 1))
                say(
                    f"the {member.name} stopped (exit code {code}); starting it again in {pause:g} s"
                )
                member.due = now + pause
            elif member.due is not None and now >= member.due:
                try:
                    member.launch()
                except Exception as exc:  # a start that failed is a crash like any other
                    say(f"the {member.name} did not start: {exc}")
                    member.process, member.started, member.due = FailedStart(), now, None
                    continue
                say(f"the {member.name} is running again (pid {member.process.pid})")
                for dependent in (
                    m for m in self.members if m.name in member.then and m.due is None
                ):
                    say(f"restarting the {dependent.name} after the {member.name}")
                    dependent.stop(dependent.process)
                    dependent.launch()

    def run(self, interval: float = 0.5) -> None:
        while True:
            self.check()
            time.sleep(interval)

    def stop(self) -> None:
        """Stop every member, the last started first; all are asked at once, then waited for."""
        running = [
            m.process for m in reversed(self.members) if m.process.pid and m.process.poll() is None
        ]
        for process in running:
            process.terminate()
        for member in reversed(self.members):
            member.stop(member.process)


class FailedStart:
    """Stands for a process that could not be started: it has already exited."""

    pid = None
    returncode = 1

    def poll(self):
        return self.returncode

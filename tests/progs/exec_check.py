"""Checks the spawn's two guards against a signal meant for pipeplex's group, with real
children of this (single-threaded) process: how _killed_before_exec judges a child that
died before its exec, after it, or runs; and that drop_group_signals drops a pending
signal and leaves each signal as exec() would. Prints one word per check."""
import os
import signal

from pipeplex.participants._spawn import _killed_before_exec, drop_group_signals


def dead(pid: int) -> None:
    """Wait until ``pid`` has exited, without reaping it (it stays a zombie to look at)."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


pid = os.fork()
if pid == 0:  # a child killed before it exec'd anything
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    os._exit(0)
dead(pid)
print("before-exec", _killed_before_exec(pid))
os.waitpid(pid, 0)

pid = os.fork()
if pid == 0:  # a child whose program killed itself
    os.execv("/bin/sh", ["sh", "-c", "kill -INT $$"])
dead(pid)
print("after-exec", _killed_before_exec(pid))
os.waitpid(pid, 0)

pid = os.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", "read x"])  # (its stdin stays open: it waits)
print("running", _killed_before_exec(pid))
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)

pid = os.fork()
if pid == 0:  # SIGINT pending, SIGHUP ignored by the parent: as after a fork of pipeplex's
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGHUP})
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGHUP)
    was_pending = {signal.SIGINT, signal.SIGHUP} <= signal.sigpending()
    drop_group_signals(set())  # (dies here of SIGINT if it was not dropped)
    ok = (was_pending and not signal.sigpending()
          and signal.getsignal(signal.SIGINT) == signal.SIG_DFL
          and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
          and not signal.pthread_sigmask(signal.SIG_BLOCK, set()))
    os._exit(0 if ok else 1)
print("dropped", os.waitpid(pid, 0)[1] == 0)

"""Spawns members while its own process group gets SIGINT every 10 ms, as a terminal's
Ctrl-C would come in the middle of a start wave. Prints how many died of it before their
program ran, how many signals were sent, how many its wakeup pipe told (as asyncio's
loop hears them), and how many members started with a signal blocked or ignored.

Usage: spawn_under_signals.py COUNT pipes|terminal"""
import os
import signal
import sys
import threading

from pipeplex._signals import clean_inherited_signals
from pipeplex.participants import _spawn

clean_inherited_signals()  # (as pipeplex does: a background job ignores SIGINT and SIGQUIT)

count, kind = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGINT, lambda *args: None)  # (pipeplex takes its Ctrl-C)
wakeup_r, wakeup_w = os.pipe()
os.set_blocking(wakeup_w, False)
os.set_blocking(wakeup_r, False)
signal.set_wakeup_fd(wakeup_w)
done = threading.Event()
sent = 0


def ctrl_c_now_and_then() -> None:
    global sent
    while not done.wait(0.01):
        os.killpg(0, signal.SIGINT)
        sent += 1


sender = threading.Thread(target=ctrl_c_now_and_then)
sender.start()
children = []
unclean = 0
try:
    for _ in range(count):
        master, slave = os.openpty() if kind == "terminal" else os.pipe()
        child = _spawn.spawn(
            ["sleep", "60"], full_terminal=kind == "terminal", executable=None, stdin=slave,
            stdout=slave, stderr=slave, cwd=None, env=dict(os.environ))
        children.append(child)
        os.close(slave)
        with open(f"/proc/{child.pid}/status") as status:
            masks = dict(line.split(":", 1) for line in status if line.startswith("Sig"))
        # (exec'd now; a zombie's status says nothing: its death is counted below)
        # (signals 1-31: 32 and 33 are the C library's, which a harness may leave ignored)
        if any(int(masks.get(key, "0"), 16) & 0x7FFFFFFF for key in ("SigBlk", "SigIgn")):
            unclean += 1
            print("unclean:", masks, file=sys.stderr)
finally:
    done.set()
    sender.join()
    died = sum(os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
               is not None for child in children)
    for child in children:
        child.kill()
        child.wait()
told = 0
try:
    while chunk := os.read(wakeup_r, 4096):
        told += len(chunk)
except BlockingIOError:
    pass
print(f"died {died} sent {sent} told {told} unclean {unclean}")

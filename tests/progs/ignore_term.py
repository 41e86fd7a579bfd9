# Ignores SIGTERM (like a stuck server), announces it, and waits forever.
import signal
import sys

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
sys.stdin.read()
signal.pause()

# Prints "tick N" every 2 ms until a line arrives on stdin (or 20 s pass).
import selectors
import sys
import time

selector = selectors.DefaultSelector()
selector.register(sys.stdin, selectors.EVENT_READ)
deadline = time.monotonic() + 20
tick = 0
while time.monotonic() < deadline and not selector.select(0.002):
    print("tick", tick, flush=True)
    tick += 1

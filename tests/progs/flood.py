# Writes N sequence-numbered lines of exactly 80 bytes, in whole-line or split chunks.
import os
import sys

ident, count, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = b"".join(
    f"{ident} {seq:010d} ".encode().ljust(79, b"x") + b"\n" for seq in range(count)
)
view = memoryview(lines)
step = chunk if chunk else 65520
while view:
    written = os.write(1, view[:step])
    view = view[written:]

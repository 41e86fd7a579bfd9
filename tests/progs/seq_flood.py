# Writes COUNT lines to stdout and COUNT to stderr, each "IDENT FD SEQ CRC PAYLOAD" with a
# payload of random letters (up to 4000 bytes; up to 60 for "bytes"), the two streams'
# writes interleaved at random sizes up to 8 KiB, or one byte per write ("bytes"): what a
# reader can check line by line for loss, tearing, splicing and mixing of streams.
import os
import random
import string
import sys
import zlib

ident, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(ident)
longest = 60 if mode == "bytes" else 4000


def lines(fd: int) -> memoryview:
    out = []
    for seq in range(count):
        payload = "".join(rng.choices(string.ascii_letters, k=rng.randint(0, longest)))
        out.append(f"{ident} {fd} {seq:06d} {zlib.crc32(payload.encode()):08x} {payload}\n")
    return memoryview("".join(out).encode())


views = {1: lines(1), 2: lines(2)}
while views:
    fd = rng.choice(sorted(views))
    size = 1 if mode == "bytes" else rng.randint(1, 8192)
    written = os.write(fd, views[fd][:size])
    views[fd] = views[fd][written:]
    if not views[fd]:
        del views[fd]

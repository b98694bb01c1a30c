"""Drops a wasm file's custom sections (names, producers): what remains is
what the runtime executes. Usage: compact.py IN OUT"""
import sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\0asm\x01\0\0\0"
out = bytearray(b[:8])
i = 8
def leb(i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7f) << s; s += 7
        if x < 0x80:
            return r, i
while i < len(b):
    start = i
    sid = b[i]; i += 1
    n, j = leb(i)
    end = j + n
    if sid != 0:
        out += b[start:end]
    i = end
open(sys.argv[2], "wb").write(bytes(out))

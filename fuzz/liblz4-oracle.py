# The reference for the differential LZ4 fuzz target (fuzz/targets.ts, "lz4-liblz4"): liblz4's own
# LZ4_decompress_safe, called through ctypes on every block of a batch. Input on stdin: blocks as
# u32 length (little-endian) then bytes. Output: per block an i32 status (bytes decoded, or
# negative: refused) and, when it decoded, the bytes. The output capacity is the first argument.
import ctypes
import struct
import sys

lib = ctypes.CDLL("liblz4.so.1")
capacity = int(sys.argv[1])
data = sys.stdin.buffer.read()
out = bytearray()
target = ctypes.create_string_buffer(capacity)
at = 0
while at < len(data):
    (length,) = struct.unpack_from("<I", data, at)
    block = data[at + 4 : at + 4 + length]
    at += 4 + length
    status = lib.LZ4_decompress_safe(block, target, length, capacity)
    out += struct.pack("<i", status)
    if status > 0:
        out += target.raw[:status]
sys.stdout.buffer.write(bytes(out))

#!/usr/bin/env python3
"""Copy a CUDA shared library, zeroing the GPU code built for other SM architectures.

    scripts/fatbin_keep_arch.py IN.so OUT.so 90

ONNX Runtime's CUDA provider (libonnxruntime_providers_cuda.so, 284 MB) carries its kernels as
compiled code (SASS) for sm_75, 80, 86, 89, 90 and 120 in the ELF section `.nv_fatbin`. A GPU
runs only the code of its own architecture (an H100 is sm_90), so the other entries are dead
weight when the library is carried to one known GPU. Zeroing their payloads keeps every offset,
size and header in place (the file is still the same valid ELF) and lets it compress from
186 MB to 52 MB with xz: small enough to travel in two 64 MiB transfers instead of four.

Entry layout (little endian), as found in this file: each fatbin starts with magic 0xBA55ED50,
u16 version, u16 header size, u64 size of its entries; each entry with u16 kind (1 PTX,
2 ELF), u16 version, u32 header size, u64 payload size, and the SM number as the u32 at byte
28. The script refuses to write if it finds PTX (which any newer GPU could compile) or no
entry of the architecture asked for.
"""
import struct
import subprocess
import sys

MAGIC = 0xBA55ED50


def fatbin_section(path):
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if " .nv_fatbin " in line + " ":
            fields = line.split("]", 1)[1].split()
            return int(fields[3], 16), int(fields[4], 16)
    sys.exit(f"{path}: no .nv_fatbin section")


def main():
    src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = bytearray(open(src, "rb").read())
    start, size = fatbin_section(src)
    pos, end = start, start + size
    kept = zeroed = 0
    while pos < end:
        magic, _, header, body = struct.unpack_from("<IHHQ", data, pos)
        if magic != MAGIC:  # fatbins are 8-byte aligned; skip padding
            pos += 8
            continue
        entry, last = pos + header, pos + header + body
        while entry < last:
            kind, _, eheader, payload = struct.unpack_from("<HHIQ", data, entry)
            sm = struct.unpack_from("<I", data, entry + 28)[0]
            if kind != 2:
                sys.exit(f"entry of kind {kind} (not SASS) at {entry:#x}: not handled")
            body_at = entry + eheader
            if sm == keep:
                kept += payload
            else:
                data[body_at:body_at + payload] = bytes(payload)
                zeroed += payload
            entry = body_at + payload
        pos = last
    if kept == 0:
        sys.exit(f"no sm_{keep} code in {src}")
    open(dst, "wb").write(data)
    print(f"{dst}: kept {kept} bytes of sm_{keep} code, zeroed {zeroed} bytes of other architectures")


if __name__ == "__main__":
    main()

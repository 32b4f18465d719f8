#!/usr/bin/env python3
"""Splits / rebuilds a safetensors checkpoint around one shared tensor, so the fp16 demo model can travel to the
GPU machine without its embedding (byte-identical to the AWQ demo model's, which travels anyway):
  split   SRC.safetensors OUT.safetensors NAME            writes SRC without tensor NAME
  merge   PART.safetensors DONOR.safetensors OUT NAME     writes PART plus NAME taken from DONOR
Plain Python (no numpy): the header is JSON, the data raw bytes."""
import json, struct, sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
    return tensors, meta


def write(path, tensors, meta):
    header, offset, chunks = {}, 0, []
    if meta:
        header["__metadata__"] = meta
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for c in chunks:
            f.write(c)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "split":
        src, out, name = sys.argv[2:5]
        tensors, meta = read(src)
        del tensors[name]
        write(out, tensors, meta)
    elif mode == "merge":
        part, donor, out, name = sys.argv[2:6]
        tensors, meta = read(part)
        tensors[name] = read(donor)[0][name]
        write(out, tensors, meta)
    else:
        sys.exit(f"unknown mode {mode}")

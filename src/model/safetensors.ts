/**
 * Safetensors reader: parses and validates the header, then reads one tensor at a time through a
 * FileHandle at its offset into a fresh buffer. A whole file is never held in one Buffer (Node's
 * Buffers stop at 4 GiB; checkpoints are larger), and file positions are plain numbers (exact to 2^53).
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {string: string} }`,
 * then the data section; offsets are relative to its start. Data is little-endian (as is every host we run on).
 */

import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { DTYPE_BYTES, type DType, type TensorData, type TensorInfo } from "./types.js";

/** Safetensors' own limit on the JSON header, which also keeps a corrupt length from allocating gigabytes. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Largest single read handed to the OS (fs reads are limited to 2^31 - 1 bytes). */
const MAX_READ_CHUNK = 1 << 30;

export const SUPPORTED_DTYPES: readonly DType[] = Object.keys(DTYPE_BYTES) as DType[];

/** One tensor of one file: its metadata plus where its bytes lie in the file. */
export interface SafetensorsEntry extends TensorInfo {
  /** Absolute byte position of the first byte of its data in the file. */
  filePosition: number;
}

/** The parsed, validated header of one safetensors file. */
export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Byte position of the data section (8 + header length). */
  dataStart: number;
}

function isDType(value: unknown): value is DType {
  return typeof value === "string" && Object.hasOwn(DTYPE_BYTES, value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Validates a header's JSON against the file's size. Pure (no I/O), so every corrupt case is testable.
 * @param file the file's path, named in every error.
 */
export function parseSafetensorsHeader(
  headerJson: string,
  headerLength: number,
  fileSize: number,
  file: string,
): SafetensorsHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(headerJson);
  } catch (err) {
    throw new Error(`${file}: the safetensors header is not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`${file}: the safetensors header must be a JSON object of tensors`);
  }
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(raw, file);
      continue;
    }
    const where = `tensor "${name}" in ${file}`;
    if (raw === null || typeof raw !== "object") throw new Error(`${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new Error(
        `${where}: unknown dtype ${JSON.stringify(dtype)}; supported: ${SUPPORTED_DTYPES.join(", ")}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      throw new Error(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every(isNonNegativeInteger) ||
      offsets[0] > offsets[1]
    ) {
      throw new Error(
        `${where}: data_offsets ${JSON.stringify(offsets)} must be [begin, end] with begin <= end`,
      );
    }
    const [begin, end] = offsets as [number, number];
    const numElements = shape.reduce((a: number, b: number) => a * b, 1);
    const byteLength = numElements * DTYPE_BYTES[dtype];
    if (byteLength !== end - begin) {
      throw new Error(
        `${where}: shape [${shape.join(", ")}] x ${dtype} is ${byteLength} bytes but data_offsets ` +
          `[${begin}, ${end}] span ${end - begin} bytes`,
      );
    }
    entries.set(name, { name, dtype, shape: [...shape], file, byteLength, filePosition: dataStart + begin });
    ranges.push({ name, begin, end });
  }
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (cur.begin < prev.end) {
      throw new Error(
        `${file}: tensors "${prev.name}" [${prev.begin}, ${prev.end}) and "${cur.name}" ` +
          `[${cur.begin}, ${cur.end}) overlap in the data section`,
      );
    }
  }
  const last = ranges.at(-1);
  if (last !== undefined && last.end > dataSize) {
    // The first tensor to reach past the end is the one a reader would fail on.
    const first = ranges.find((r) => r.end > dataSize)!;
    throw new Error(
      `tensor "${first.name}" in ${file}: data_offsets [${first.begin}, ${first.end}) lie outside the data ` +
        `section, which holds ${Math.max(dataSize, 0)} bytes (file size ${fileSize}): the file is truncated ` +
        "or its header is corrupt",
    );
  }
  return { entries, metadata, dataStart };
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`${file}: __metadata__ must be an object of strings`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== "string") throw new Error(`${file}: __metadata__.${key} must be a string`);
    out[key] = value;
  }
  return out;
}

/** Reads exactly `length` bytes at `position` into `target`, or throws naming what was short. */
export async function readFully(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(target.length - done, MAX_READ_CHUNK);
    const { bytesRead } = await handle.read(target, done, want, position + done);
    if (bytesRead === 0) {
      throw new Error(`${what}: unexpected end of file after ${done} of ${target.length} bytes (truncated?)`);
    }
    done += bytesRead;
  }
}

function viewAs(dtype: DType, buffer: ArrayBuffer): TensorData {
  switch (dtype) {
    case "F16":
    case "BF16":
      return new Uint16Array(buffer);
    case "F32":
      return new Float32Array(buffer);
    case "I32":
      return new Int32Array(buffer);
    case "I8":
      return new Int8Array(buffer);
    case "U8":
      return new Uint8Array(buffer);
  }
}

/** One open safetensors file. `close()` it when done. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const fileSize = (await stat(path)).size;
    const handle = await open(path, "r");
    try {
      if (fileSize < 8) {
        throw new Error(
          `${path}: file is truncated (${fileSize} bytes); a safetensors file starts with an 8-byte header length`,
        );
      }
      const lengthBytes = new Uint8Array(8);
      await readFully(handle, lengthBytes, 0, path);
      const rawHeaderLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
      const headerLength = Number(rawHeaderLength);
      if (headerLength > fileSize - 8) {
        // The exact u64 in the message: Number() would print a huge garbage value rounded.
        throw new Error(
          `${path}: header length ${rawHeaderLength} runs past the end of the file (${fileSize} bytes): ` +
            "truncated or not a safetensors file",
        );
      }
      if (headerLength > MAX_HEADER_BYTES) {
        throw new Error(`${path}: header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const headerBytes = new Uint8Array(headerLength);
      await readFully(handle, headerBytes, 8, path);
      const json = new TextDecoder("utf-8").decode(headerBytes);
      const header = parseSafetensorsHeader(json, headerLength, fileSize, path);
      return new SafetensorsFile(path, header, handle);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.header.entries.keys()];
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): SafetensorsEntry {
    const entry = this.header.entries.get(name);
    if (entry === undefined) throw new Error(`tensor "${name}" is not in ${this.path}`);
    return entry;
  }

  /** Reads one tensor into a fresh, aligned array of its dtype (F16/BF16 as Uint16Array bit patterns). */
  async read(name: string): Promise<TensorData> {
    const entry = this.entry(name);
    const buffer = new ArrayBuffer(entry.byteLength);
    await readFully(
      this.handle,
      new Uint8Array(buffer),
      entry.filePosition,
      `tensor "${name}" in ${this.path}`,
    );
    return viewAs(entry.dtype, buffer);
  }

  /**
   * Reads bytes [byteBegin, byteEnd) of one tensor's data (e.g. a band of rows), as raw bytes.
   * Lets callers stream a large tensor without holding it whole.
   */
  async readBytes(name: string, byteBegin = 0, byteEnd?: number): Promise<Uint8Array> {
    const entry = this.entry(name);
    const end = byteEnd ?? entry.byteLength;
    if (!(byteBegin >= 0 && byteBegin <= end && end <= entry.byteLength)) {
      throw new Error(
        `tensor "${name}" in ${this.path}: byte range [${byteBegin}, ${end}) is outside its ${entry.byteLength} bytes`,
      );
    }
    const out = new Uint8Array(end - byteBegin);
    await readFully(this.handle, out, entry.filePosition + byteBegin, `tensor "${name}" in ${this.path}`);
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

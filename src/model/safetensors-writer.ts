/**
 * Streaming safetensors writer: the header first, then each tensor's bytes in turn, so a checkpoint
 * larger than memory can be written one tensor at a time (a tensor's data may be a function that
 * produces it when its turn comes). Writes `<path>.tmp` and renames it, so a crash never leaves a
 * half-written file under the real name.
 */
import { open, rename, rm } from "node:fs/promises";
import { DTYPE_BYTES, type DType, type TensorData } from "./types.js";

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  /** The data (F16/BF16 as Uint16Array bit patterns), or a function producing it when it is written. */
  data: TensorData | (() => TensorData | Promise<TensorData>);
}

const ARRAY_FOR_DTYPE: Record<DType, string> = {
  F16: "Uint16Array",
  BF16: "Uint16Array",
  F32: "Float32Array",
  I32: "Int32Array",
  I8: "Int8Array",
  U8: "Uint8Array",
};

function checkData(tensor: TensorToWrite, data: TensorData, byteLength: number): void {
  const expected = ARRAY_FOR_DTYPE[tensor.dtype];
  if (data.constructor.name !== expected) {
    throw new Error(
      `tensor "${tensor.name}": ${tensor.dtype} data must be a ${expected}, got ${data.constructor.name}`,
    );
  }
  if (data.byteLength !== byteLength) {
    throw new Error(
      `tensor "${tensor.name}": shape [${tensor.shape.join(", ")}] x ${tensor.dtype} is ${byteLength} bytes, ` +
        `data has ${data.byteLength}`,
    );
  }
}

/** Writes tensors (in the given order) and optional string metadata to a safetensors file at `path`. */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const byteLengths: number[] = [];
  let offset = 0;
  for (const tensor of tensors) {
    if (tensor.name === "__metadata__" || Object.hasOwn(header, tensor.name)) {
      throw new Error(`writeSafetensors ${path}: duplicate or reserved tensor name "${tensor.name}"`);
    }
    if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `tensor "${tensor.name}": shape [${tensor.shape.join(", ")}] must be non-negative integers`,
      );
    }
    const byteLength = tensor.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[tensor.dtype];
    header[tensor.name] = {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data_offsets: [offset, offset + byteLength],
    };
    byteLengths.push(byteLength);
    offset += byteLength;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data section starts 8-byte aligned, as the reference implementation does.
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const withPadding = new Uint8Array(padded).fill(0x20);
    withPadding.set(headerBytes);
    headerBytes = withPadding;
  }
  const lengthBytes = new Uint8Array(8);
  new DataView(lengthBytes.buffer).setBigUint64(0, BigInt(headerBytes.length), true);

  const tmpPath = `${path}.tmp`;
  const handle = await open(tmpPath, "w");
  try {
    let position = 0;
    const write = async (bytes: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
        done += bytesWritten;
      }
      position += bytes.length;
    };
    await write(lengthBytes);
    await write(headerBytes);
    for (let i = 0; i < tensors.length; i++) {
      const tensor = tensors[i];
      const data = typeof tensor.data === "function" ? await tensor.data() : tensor.data;
      checkData(tensor, data, byteLengths[i]);
      await write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(tmpPath, { force: true });
    throw err;
  }
  await rename(tmpPath, path);
}

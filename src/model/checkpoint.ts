/**
 * A model folder's safetensors checkpoint, sharded or not, behind the `Checkpoint` interface:
 * `model.safetensors.index.json` (sharded), else `model.safetensors`, else a lone `*.safetensors`.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { assertFinite } from "./finite-check.js";
import { SafetensorsFile } from "./safetensors.js";
import type { Checkpoint, TensorData, TensorInfo } from "./types.js";

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";

/** Parses `model.safetensors.index.json` into tensor name -> shard file name. */
export function parseSafetensorsIndex(text: string, indexPath: string): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${indexPath}: malformed JSON (${(err as Error).message})`);
  }
  const weightMap =
    parsed !== null && typeof parsed === "object"
      ? (parsed as Record<string, unknown>).weight_map
      : undefined;
  if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
    throw new Error(`${indexPath}: expected an object with "weight_map": { tensor name: shard file name }`);
  }
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof file !== "string" || file === "" || file.includes("/") || file.includes("\\")) {
      throw new Error(`${indexPath}: weight_map["${name}"] must be a shard file name in the same folder`);
    }
    out.set(name, file);
  }
  if (out.size === 0) throw new Error(`${indexPath}: weight_map is empty`);
  return out;
}

export class SafetensorsCheckpoint implements Checkpoint {
  private constructor(
    readonly dir: string,
    /** The files it reads, by absolute path. */
    private readonly files: Map<string, SafetensorsFile>,
    /** Tensor name -> the file holding it. */
    private readonly owners: Map<string, SafetensorsFile>,
  ) {}

  /** Opens the checkpoint in `dir`, validating every header (and the index against the shards). */
  static async open(dir: string): Promise<SafetensorsCheckpoint> {
    const absDir = resolve(dir);
    let listing: string[];
    try {
      listing = await readdir(absDir);
    } catch (err) {
      throw new Error(`cannot read model folder ${absDir}: ${(err as Error).message}`);
    }
    const files = new Map<string, SafetensorsFile>();
    const openFile = async (name: string): Promise<SafetensorsFile> => {
      const path = join(absDir, name);
      let file = files.get(path);
      if (file === undefined) {
        file = await SafetensorsFile.open(path);
        files.set(path, file);
      }
      return file;
    };
    const owners = new Map<string, SafetensorsFile>();
    try {
      if (listing.includes(INDEX_FILE)) {
        const indexPath = join(absDir, INDEX_FILE);
        const weightMap = parseSafetensorsIndex(await readFile(indexPath, "utf8"), indexPath);
        for (const shardName of new Set(weightMap.values())) {
          if (!listing.includes(shardName)) {
            throw new Error(`${indexPath} names shard ${shardName}, which is not in ${absDir}`);
          }
          await openFile(shardName);
        }
        for (const [name, shardName] of weightMap) {
          const shard = files.get(join(absDir, shardName))!;
          if (!shard.header.entries.has(name)) {
            throw new Error(
              `tensor "${name}": ${indexPath} places it in ${shard.path}, which does not hold it`,
            );
          }
          owners.set(name, shard);
        }
      } else {
        const candidates = listing.includes(SINGLE_FILE)
          ? [SINGLE_FILE]
          : listing.filter((f) => f.endsWith(".safetensors")).sort();
        if (candidates.length === 0) {
          throw new Error(
            `no safetensors checkpoint in ${absDir}: expected ${SINGLE_FILE}, ${INDEX_FILE} with its shards, ` +
              "or one *.safetensors file",
          );
        }
        if (candidates.length > 1) {
          throw new Error(
            `${absDir} holds several .safetensors files (${candidates.join(", ")}) but no ${INDEX_FILE} ` +
              "saying which tensor is where",
          );
        }
        const file = await openFile(candidates[0]);
        for (const name of file.names()) owners.set(name, file);
      }
    } catch (err) {
      await Promise.all([...files.values()].map((f) => f.close()));
      throw err;
    }
    return new SafetensorsCheckpoint(absDir, files, owners);
  }

  names(): string[] {
    return [...this.owners.keys()];
  }

  has(name: string): boolean {
    return this.owners.has(name);
  }

  info(name: string): TensorInfo {
    const owner = this.owners.get(name);
    if (owner === undefined) throw new Error(`tensor "${name}" is not in the checkpoint ${this.dir}`);
    const { dtype, shape, file, byteLength } = owner.entry(name);
    return { name, dtype, shape: [...shape], file, byteLength };
  }

  /** Reads one tensor; a float tensor holding a NaN or an infinity is an error naming it (finite-check.ts). */
  async read(name: string): Promise<TensorData> {
    const owner = this.owners.get(name);
    if (owner === undefined) throw new Error(`tensor "${name}" is not in the checkpoint ${this.dir}`);
    const data = await owner.read(name);
    const { dtype, shape } = owner.entry(name);
    assertFinite(
      dtype,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      `tensor "${name}" in ${owner.path}`,
      shape,
    );
    return data;
  }

  /** Reads bytes [byteBegin, byteEnd) of one tensor (a band of rows of a large matrix, say). */
  readBytes(name: string, byteBegin?: number, byteEnd?: number): Promise<Uint8Array> {
    const owner = this.owners.get(name);
    if (owner === undefined) {
      return Promise.reject(new Error(`tensor "${name}" is not in the checkpoint ${this.dir}`));
    }
    return owner.readBytes(name, byteBegin, byteEnd);
  }

  /** Total bytes of tensor data (what loading all the weights reads). */
  totalBytes(): number {
    let total = 0;
    for (const name of this.owners.keys()) total += this.info(name).byteLength;
    return total;
  }

  /** The files this checkpoint reads (absolute paths). */
  filePaths(): string[] {
    return [...this.files.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
    this.files.clear();
  }
}

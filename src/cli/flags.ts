/** Parsers for numeric and choice flags, shared by the subcommands: each error names the flag. */

import { InvalidArgumentError } from "commander";
import type { BackendChoice } from "../backend/create.js";
import { type KvCacheDtype, parseKvCacheDtype } from "../backend/kv-cache-dtype.js";

export function numberFlag(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isFinite(parsed))
      throw new InvalidArgumentError(`${flag} needs a number`);
    return parsed;
  };
}

export function integerFlag(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isInteger(parsed))
      throw new InvalidArgumentError(`${flag} needs an integer`);
    return parsed;
  };
}

export function positiveIntegerFlag(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1)
      throw new InvalidArgumentError(`${flag} needs a positive integer`);
    return parsed;
  };
}

export function backendFlag(value: string): BackendChoice {
  if (value !== "cpu" && value !== "cuda" && value !== "auto") {
    throw new InvalidArgumentError("--backend must be cpu, cuda or auto");
  }
  return value;
}

/** A comma-separated list of positive integers ("1,8,32"). */
export function intListFlag(flag: string): (value: string) => number[] {
  const one = positiveIntegerFlag(flag);
  return (value) => value.split(",").map((v) => one(v.trim()));
}

/** An integer >= min (counts, sizes, limits). */
export function integerAtLeastFlag(flag: string, min: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isInteger(parsed) || parsed < min)
      throw new InvalidArgumentError(`${flag} needs an integer >= ${min}, got "${value}"`);
    return parsed;
  };
}

/** A TCP port: 0 (any free port) to 65535, checked when the flags are parsed, before any model loads. */
export function portFlag(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isInteger(parsed) || parsed < 0 || parsed > 65535)
    throw new InvalidArgumentError(`--port needs a port number from 0 to 65535, got "${value}"`);
  return parsed;
}

/** A fraction in (0, 1]. */
export function fractionFlag(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === "" || !(parsed > 0 && parsed <= 1))
      throw new InvalidArgumentError(`${flag} needs a number in (0, 1], got "${value}"`);
    return parsed;
  };
}

/** A duration in seconds >= 0. */
export function secondsFlag(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === "" || !(parsed >= 0) || !Number.isFinite(parsed))
      throw new InvalidArgumentError(`${flag} needs seconds >= 0, got "${value}"`);
    return parsed;
  };
}

/** A repeatable flag's values, in order. */
export function collectFlag(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * The model of a command given as its positional argument or --model (one of the two; both only when they
 * agree). `fallback` is used when neither is given; without one, that is an error naming both ways.
 */
export function modelFromArgs(
  command: string,
  positional: string | undefined,
  flag: string | undefined,
  fallback?: string,
): string {
  if (positional !== undefined && flag !== undefined && positional !== flag) {
    throw new Error(`two models given: "${positional}" and --model "${flag}"; give one`);
  }
  const model = flag ?? positional ?? fallback;
  if (model === undefined || model === "") {
    throw new Error(`name the model: awq ${command} MODEL or --model MODEL (a folder, a hub id, or "demo")`);
  }
  return model;
}

/**
 * A text flag's value, where "-" means standard input (read to its end; one trailing newline, as `echo`
 * adds, is dropped). A terminal on stdin is refused rather than waited on.
 */
export async function textOrStdin(flag: string, value: string): Promise<string> {
  if (value !== "-") return value;
  if (process.stdin.isTTY)
    throw new Error(`${flag} - reads standard input, but it is a terminal: pipe the text in`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
}

/** --kv-cache-dtype: auto, fp8 or fp8_e4m3 (vLLM's names). */
export function kvCacheDtypeFlag(value: string): KvCacheDtype {
  try {
    return parseKvCacheDtype(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export const KV_CACHE_DTYPE_HELP =
  "KV cache data type: auto (the model's) or fp8 / fp8_e4m3 (E4M3, per-tensor scale 1.0: 1 byte an element on CUDA, emulated on the CPU)";

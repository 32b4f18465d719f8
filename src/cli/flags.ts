/** Parsers for numeric and choice flags, shared by the subcommands: each error names the flag. */
import { InvalidArgumentError } from "commander";
import type { BackendChoice } from "../backend/create.js";

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

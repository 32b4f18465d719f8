/**
 * Checks a request body against its TypeBox schema and turns the first problem into a 400 that names the
 * field in OpenAI's style (`messages[0].role`) and says what was expected.
 */
import { Kind, type Static, type TSchema } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import type { ValueError } from "@sinclair/typebox/errors";
import { badRequest } from "./errors.js";

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checkerFor<T extends TSchema>(schema: T): TypeCheck<T> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check as TypeCheck<T>;
}

/** `/messages/0/role` -> `messages[0].role`. */
export function pointerToParam(pointer: string): string {
  let param = "";
  for (const part of pointer.split("/").slice(1)) {
    const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
    param += /^[0-9]+$/.test(key) ? `[${key}]` : param === "" ? key : `.${key}`;
  }
  return param;
}

/** A short description of a value for an error message (JSON, cut to 60 characters). */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "number" && !Number.isFinite(value)) return `${value} (not a finite number)`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // Too deep to print (the body parser bounds depth, but library callers may pass anything).
    text = Array.isArray(value) ? "a deeply nested array" : "a deeply nested object";
  }
  return truncate(text);
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** What a schema expects, in words, for the error message. */
function describeSchema(schema: TSchema): string {
  if (typeof schema.description === "string") return schema.description;
  if (schema[Kind] === "Union") {
    const variants = (schema.anyOf as TSchema[]).filter((s) => s[Kind] !== "Null");
    if (variants.every((s) => s[Kind] === "Literal")) {
      return `one of ${variants.map((s) => JSON.stringify(s.const)).join(", ")}`;
    }
    return variants.map(describeSchema).join(" or ");
  }
  const kind = String(schema[Kind]).toLowerCase();
  const bounds: string[] = [];
  if (schema.minimum !== undefined) bounds.push(`>= ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) bounds.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) bounds.push(`<= ${schema.maximum}`);
  if (schema.minItems !== undefined) bounds.push(`at least ${schema.minItems} item(s)`);
  if (schema.maxItems !== undefined) bounds.push(`at most ${schema.maxItems} item(s)`);
  if (schema.minLength !== undefined) bounds.push(`at least ${schema.minLength} character(s)`);
  if (schema.maxLength !== undefined) bounds.push(`at most ${schema.maxLength} character(s)`);
  if (kind === "array" && schema.items)
    return `an array of ${describeSchema(schema.items as TSchema)}${bounds.length ? ` (${bounds.join(", ")})` : ""}`;
  const noun = kind === "record" ? "object" : kind === "literal" ? JSON.stringify(schema.const) : kind;
  return bounds.length ? `${noun} ${bounds.join(", ")}` : noun;
}

/** The deepest, most specific error: unions report themselves, so look inside the variant that fits best. */
function firstError(schema: TSchema, value: unknown): ValueError | undefined {
  return checkerFor(schema).Errors(value).First();
}

function messageFor(error: ValueError): string {
  if (error.value === undefined) return `Missing required field; expected ${describeSchema(error.schema)}`;
  return `Expected ${describeSchema(error.schema)}, got ${describeValue(error.value)}`;
}

/** Returns the body typed by its schema, or throws a 400 ApiError naming the first invalid field. */
export function validateBody<T extends TSchema>(schema: T, body: unknown): Static<T> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest(`The request body must be a JSON object, got ${describeValue(body)}`, "body");
  }
  const check = checkerFor(schema);
  if (check.Check(body)) return body as Static<T>;
  let error = firstError(schema, body)!;
  let path = error.path;
  // A `null`-or-X field reports the union; name what X needed (e.g. the bound it broke) instead.
  if (error.schema[Kind] === "Union") {
    const variants = (error.schema.anyOf as TSchema[]).filter((s) => s[Kind] !== "Null");
    const inner = variants.length === 1 ? firstError(variants[0]!, error.value) : undefined;
    if (inner) {
      path = error.path + inner.path;
      error = inner;
    }
  }
  const param = pointerToParam(path) || "body";
  throw badRequest(`Invalid value for '${param}': ${messageFor(error)}`, param);
}

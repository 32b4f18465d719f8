/**
 * The one JSON body parser of the server. Before a body becomes a value it must be valid UTF-8 (never
 * silently rewritten to U+FFFD), nested at most MAX_JSON_DEPTH deep (a deeper body would overflow the
 * stack of whatever walks it later), and every string in it well formed UTF-16 (a `\ud800` escape is a
 * lone surrogate: OpenAI refuses it, and it cannot be tokenized faithfully). Each refusal is a 400 that
 * names the field.
 */
import type { FastifyInstance } from "fastify";
import { ApiError, badRequest } from "./errors.js";

/** Deeper than any request schema needs (tool schemas nest, but not 64 levels). */
export const MAX_JSON_DEPTH = 64;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Bytes -> text, or a 400 naming the first bad byte's offset. */
export function decodeUtf8(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch {
    throw badRequest(
      `The request body is not valid UTF-8 (first bad byte at offset ${firstBadUtf8Offset(body)})`,
      "body",
    );
  }
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstBadUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const len =
      b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (len === 0) return i;
    let end = i + len;
    if (end > bytes.length) return i;
    for (let j = i + 1; j < end; j++) if ((bytes[j]! & 0xc0) !== 0x80) return i;
    // Overlong 3/4-byte forms, surrogates (ED A0..BF) and code points above U+10FFFF.
    const b1 = bytes[i + 1] ?? 0;
    if (
      (b === 0xe0 && b1 < 0xa0) ||
      (b === 0xed && b1 >= 0xa0) ||
      (b === 0xf0 && b1 < 0x90) ||
      (b === 0xf4 && b1 >= 0x90)
    )
      return i;
    i = end;
    end = 0;
  }
  return bytes.length;
}

/**
 * The deepest nesting of objects and arrays in a JSON text, counted without parsing (strings skipped),
 * stopping as soon as `limit` is passed.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** The path (`messages[0].content`) of the first string, or key, that is not well-formed UTF-16. */
export function findIllFormedString(value: unknown): string | null {
  // Iterative: the depth is already bounded, but a walk without recursion cannot overflow regardless.
  const stack: Array<{ value: unknown; path: string }> = [{ value, path: "" }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (typeof v === "string") {
      if (!isWellFormed(v)) return path || "body";
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: `${path}[${i}]` });
    } else if (v !== null && typeof v === "object") {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        const childPath = path === "" ? key : `${path}.${key}`;
        if (!isWellFormed(key)) return childPath;
        stack.push({ value: child, path: childPath });
      }
    }
  }
  return null;
}

/** A surrogate escape (`\uD800`-`\uDFFF`) in the raw text: only then can a parsed string be ill-formed. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** Raw body -> value, or a 400 naming what is wrong. */
export function parseJsonBody(body: Buffer): unknown {
  const text = decodeUtf8(body);
  if (text.trim() === "") {
    throw new ApiError(
      400,
      "The request body is empty; expected a JSON object",
      "body",
      undefined,
      "invalid_json",
    );
  }
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw badRequest(`The request body is nested more than ${MAX_JSON_DEPTH} levels deep`, "body");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = (err as Error).message;
    throw new ApiError(
      400,
      `The request body is not valid JSON: ${reason}`,
      "body",
      undefined,
      "invalid_json",
    );
  }
  if (SURROGATE_ESCAPE.test(text)) {
    const param = findIllFormedString(value);
    if (param !== null) {
      throw badRequest(
        `Invalid value for '${param}': the text contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)`,
        param,
      );
    }
  }
  return value;
}

/** Replaces fastify's JSON parser (and every other one) in `scope`: JSON bodies only, parsed as above. */
export function installJsonBodyParser(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  for (const type of ["application/json", /^application\/[\w.+-]+\+json$/]) {
    scope.addContentTypeParser(type, { parseAs: "buffer" }, (_request, body: Buffer, done) => {
      try {
        done(null, parseJsonBody(body));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
  }
}

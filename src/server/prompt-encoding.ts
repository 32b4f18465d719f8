/**
 * Text -> token ids for every route, off the event loop (EncodePool), with the length checked first: a text
 * that must tokenize to more than max-model-len tokens is a 400 before any encoding, so a 5 MB prompt costs
 * one pass over its bytes instead of a minute of a tokenizer worker.
 */
import type { EncodeOptions } from "../tokenizer/tokenizer.js";
import type { ServerContext } from "./context.js";
import { badRequest } from "./errors.js";

/** `param` names the field in the 400 (`prompt`, `messages`, `input`). */
export async function encodeText(
  ctx: ServerContext,
  text: string,
  param: string,
  opts: EncodeOptions = {},
): Promise<number[]> {
  const atLeast = ctx.encoder.minTokenCount(text);
  if (atLeast > ctx.maxModelLen) {
    throw badRequest(
      `The ${param === "messages" ? "conversation" : param} is ${text.length} characters, at least ${atLeast} tokens: ` +
        `more than this model's context of ${ctx.maxModelLen} tokens (--max-model-len)`,
      param,
    );
  }
  return ctx.encoder.encode(text, opts);
}

/**
 * The text of single tokens, for logprobs (`token`, `bytes`, `text_offset`). A token's text depends on
 * its left neighbour (SentencePiece drops the leading space of the first token of a decode), so each token
 * is decoded after the one before it and the neighbour's text is cut off.
 */
import type { TokenLogprob } from "../engine/types.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

export class TokenTexts {
  private readonly cache = new Map<string, string>();

  constructor(private readonly tokenizer: Tokenizer) {}

  /** Text of `id` when it follows `previous` (null at the start of the text). */
  text(id: number, previous: number | null): string {
    const key = `${previous ?? ""}:${id}`;
    let text = this.cache.get(key);
    if (text === undefined) {
      if (previous === null) text = this.tokenizer.decode([id]);
      else {
        const before = this.tokenizer.decode([previous]);
        const both = this.tokenizer.decode([previous, id]);
        text = both.startsWith(before) ? both.slice(before.length) : this.tokenizer.decode([id]);
      }
      if (this.cache.size > 50_000) this.cache.clear();
      this.cache.set(key, text);
    }
    return text;
  }

  /** Text of a token sequence (from the start of a text). */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids]);
  }

  isSpecial(id: number): boolean {
    return this.tokenizer.isSpecial(id);
  }

  /** UTF-8 bytes of the token: the raw byte for byte-fallback pieces (`<0xE2>`), else of its text. */
  bytes(id: number, text: string): number[] {
    const byte = BYTE_TOKEN.exec(this.tokenizer.idToToken(id) ?? "");
    if (byte) return [Number.parseInt(byte[1]!, 16)];
    return [...Buffer.from(text, "utf8")];
  }
}

/** OpenAI chat `logprobs.content` entries for one delta; `previous` is the token before the first. */
export function chatLogprobs(
  texts: TokenTexts,
  entries: readonly TokenLogprob[],
  previous: number | null,
): {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}[] {
  return entries.map((entry) => {
    const token = texts.text(entry.tokenId, previous);
    const top = entry.top.map((alt) => {
      const altText = texts.text(alt.tokenId, previous);
      return { token: altText, logprob: safeLogprob(alt.logprob), bytes: texts.bytes(alt.tokenId, altText) };
    });
    previous = entry.tokenId;
    return {
      token,
      logprob: safeLogprob(entry.logprob),
      bytes: texts.bytes(entry.tokenId, token),
      top_logprobs: top,
    };
  });
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** OpenAI completions `logprobs` for one delta, offsets counted from `offset` (the text so far). */
export function completionLogprobs(
  texts: TokenTexts,
  entries: readonly TokenLogprob[],
  previous: number | null,
  offset: number,
  topN: number,
): CompletionLogprobs {
  const result: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const entry of entries) {
    const token = texts.text(entry.tokenId, previous);
    result.tokens.push(token);
    result.token_logprobs.push(safeLogprob(entry.logprob));
    result.text_offset.push(offset);
    // The top N alternatives, plus the sampled token when it is not among them (OpenAI: "up to logprobs + 1
    // elements"; vLLM does the same, and `logprobs: 0` gives the sampled token alone).
    const top: Record<string, number> = {};
    for (const alt of entry.top.slice(0, topN)) {
      const altText = texts.text(alt.tokenId, previous);
      if (!(altText in top)) top[altText] = safeLogprob(alt.logprob);
    }
    if (!(token in top)) top[token] = safeLogprob(entry.logprob);
    result.top_logprobs.push(top);
    offset += token.length;
    previous = entry.tokenId;
  }
  return result;
}

/** JSON has no -Infinity: a banned token's logprob is sent as OpenAI does, a very large negative number. */
function safeLogprob(logprob: number): number {
  return Number.isFinite(logprob) ? logprob : -9999;
}

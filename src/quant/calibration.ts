/**
 * Calibration data for the AWQ search, formed as AutoAWQ forms it (`get_calib_dataset`):
 * each text is stripped and tokenized (with the tokenizer's BOS), texts longer than `seqlen` tokens or empty
 * are skipped, the first `samples` texts kept are concatenated, and the stream is cut into blocks of exactly
 * `seqlen` tokens (the tail is dropped).
 *
 * Texts come from
 *   .txt     one sample per paragraph: runs of non-blank lines separated by blank lines (a fortune or a
 *            chat turn spans several lines; a file without blank lines gives one sample per line);
 *   .jsonl   one JSON object per line, the sample in field `textField` (default "text");
 *   .parquet a Hugging Face dataset file, the sample in column `textField` (default "text"), read with hyparquet
 *            (uncompressed, snappy or gzip pages).
 */
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";

export const DEFAULT_TEXT_FIELD = "text";

export interface CalibrationTextOptions {
  /** Field (.jsonl) or column (.parquet) holding the text. */
  textField?: string;
}

/** A user-fixable problem with the calibration data (the CLI prints its message as is). */
export class CalibrationDataError extends Error {
  override name = "CalibrationDataError";
}

/** Splits a .txt file into paragraphs (blank-line separated); each is trimmed, empty ones dropped. */
export function splitParagraphs(text: string): string[] {
  return text
    .replace(/\r\n?/g, "\n")
    .split(/\n[ \t]*\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

function parseJsonl(text: string, file: string, field: string): string[] {
  const texts: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new CalibrationDataError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    if (row === null || typeof row !== "object" || !Object.hasOwn(row, field)) {
      const keys = row !== null && typeof row === "object" ? Object.keys(row).join(", ") : typeof row;
      throw new CalibrationDataError(
        `${file}:${i + 1}: no field "${field}" (this line has: ${keys}); pick the text field with --text-field`,
      );
    }
    const value = (row as Record<string, unknown>)[field];
    if (typeof value !== "string") {
      throw new CalibrationDataError(
        `${file}:${i + 1}: field "${field}" is ${typeof value}, expected a string`,
      );
    }
    texts.push(value);
  }
  return texts;
}

async function readParquet(file: string, column: string): Promise<string[]> {
  const buffer = await asyncBufferFromFile(file);
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new CalibrationDataError(`${file}: not a readable parquet file (${(err as Error).message})`);
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  if (!columns.includes(column)) {
    throw new CalibrationDataError(
      `${file}: no column "${column}" (columns: ${columns.join(", ")}); pick the text column with --text-field`,
    );
  }
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: buffer, metadata, columns: [column] });
  } catch (err) {
    throw new CalibrationDataError(`${file}: cannot read column "${column}": ${(err as Error).message}`);
  }
  return rows.map((row, i) => {
    const value = row[column];
    if (typeof value !== "string") {
      throw new CalibrationDataError(
        `${file}: row ${i} of column "${column}" is ${typeof value}, expected a string`,
      );
    }
    return value;
  });
}

/** Reads the calibration texts of a .txt, .jsonl or .parquet file (see the file comment for each format). */
export async function readCalibrationTexts(
  file: string,
  opts: CalibrationTextOptions = {},
): Promise<string[]> {
  const field = opts.textField ?? DEFAULT_TEXT_FIELD;
  const ext = extname(file).toLowerCase();
  let texts: string[];
  try {
    if (ext === ".parquet") texts = await readParquet(file, field);
    else if (ext === ".jsonl") texts = parseJsonl(await readFile(file, "utf8"), file, field);
    else if (ext === ".txt") texts = splitParagraphs(await readFile(file, "utf8"));
    else {
      throw new CalibrationDataError(
        `${file}: unknown calibration file type "${ext}"; expected .txt (one sample per paragraph), ` +
          ".jsonl (--text-field, default text) or .parquet (--text-field column, default text)",
      );
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CalibrationDataError(`calibration file ${file} does not exist`);
    throw err;
  }
  if (!texts.some((t) => t.trim().length > 0)) {
    throw new CalibrationDataError(`calibration file ${file} holds no text (every sample is empty)`);
  }
  return texts;
}

export interface CalibrationBlockOptions {
  /** Most texts to take (AutoAWQ's n_samples: it counts texts, not blocks). */
  samples: number;
  /** Tokens per block (AutoAWQ's max_seq_len); longer texts are skipped. */
  seqlen: number;
}

export interface CalibrationBlocks {
  blocks: Int32Array[]; // each (seqlen) token ids
  /** Texts used, texts skipped for being longer than seqlen, tokens dropped at the tail. */
  textsUsed: number;
  textsTooLong: number;
  tokensDropped: number;
}

/** The piece of a tokenizer calibration needs (Tokenizer.encode, BOS included as AutoAWQ's encode does). */
export interface TextEncoder {
  encode(text: string): number[];
}

/** Texts -> token blocks, exactly as AutoAWQ forms them (see the file comment). */
export function buildCalibrationBlocks(
  texts: readonly string[],
  tokenizer: TextEncoder,
  opts: CalibrationBlockOptions,
  source = "calibration data",
): CalibrationBlocks {
  if (!(Number.isInteger(opts.samples) && opts.samples > 0)) {
    throw new CalibrationDataError(`--samples must be a positive integer, got ${opts.samples}`);
  }
  if (!(Number.isInteger(opts.seqlen) && opts.seqlen > 1)) {
    throw new CalibrationDataError(`--seqlen must be an integer above 1, got ${opts.seqlen}`);
  }
  const kept: number[][] = [];
  let textsTooLong = 0;
  let total = 0;
  for (const text of texts) {
    const trimmed = text.trim();
    if (trimmed === "") continue;
    const ids = tokenizer.encode(trimmed);
    if (ids.length > opts.seqlen) {
      textsTooLong++;
      continue;
    }
    kept.push(ids);
    total += ids.length;
    if (kept.length === opts.samples) break;
  }
  const numBlocks = Math.floor(total / opts.seqlen);
  if (numBlocks === 0) {
    throw new CalibrationDataError(
      `${source} is too short: ${kept.length} usable text(s) of at most ${opts.seqlen} tokens give ${total} tokens, ` +
        `less than one block of --seqlen ${opts.seqlen}` +
        (textsTooLong > 0 ? ` (${textsTooLong} text(s) skipped for being longer than --seqlen)` : "") +
        "; pass more text, a larger --samples or a smaller --seqlen",
    );
  }
  const stream = new Int32Array(total); // (total) the kept texts back to back
  let offset = 0;
  for (const ids of kept) {
    stream.set(ids, offset);
    offset += ids.length;
  }
  const blocks: Int32Array[] = [];
  for (let b = 0; b < numBlocks; b++) blocks.push(stream.slice(b * opts.seqlen, (b + 1) * opts.seqlen));
  return { blocks, textsUsed: kept.length, textsTooLong, tokensDropped: total - numBlocks * opts.seqlen };
}

/**
 * The Markdown a chat model writes (paragraphs, headings, fenced code, inline code, bold/italic, lists,
 * quotes, rules, http(s) links, GitHub tables, and TeX math as `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]`)
 * parsed into a plain tree. Pure (no DOM, no Node), so it
 * runs in the browser and in unit tests; markdown.ts turns the tree into DOM nodes.
 *
 * The tree holds text only as strings; nothing here ever becomes HTML, so model output cannot inject markup.
 * Incomplete input (a stream cut mid-answer: an unclosed fence or `**`) parses to something sensible.
 */

export type Inline =
  | { type: "text"; text: string }
  | { type: "code"; text: string }
  | { type: "strong"; children: Inline[] }
  | { type: "em"; children: Inline[] }
  /** `href` is always an absolute http: or https: URL (see safeHttpUrl). */
  | { type: "link"; href: string; children: Inline[] }
  /** TeX source, delimiters removed; `display` for `$$...$$` and `\\[...\\]`. */
  | { type: "math"; tex: string; display: boolean }
  | { type: "break" };

/** A table column's alignment from its delimiter cell (`:--`, `:-:`, `--:`); null when none is given. */
export type Align = "left" | "center" | "right" | null;

export type Block =
  | { type: "paragraph"; children: Inline[] }
  | { type: "heading"; level: number; children: Inline[] }
  /** `lang` is reduced to [A-Za-z0-9_+#.-]; empty when the fence named none. */
  | { type: "code"; lang: string; text: string }
  | { type: "list"; ordered: boolean; start: number; items: Block[][] }
  | { type: "quote"; children: Block[] }
  | { type: "rule" }
  /** Every row has exactly `align.length` cells (short rows are padded, long ones cut, as GitHub does). */
  | { type: "table"; align: Align[]; header: Inline[][]; rows: Inline[][][] }
  /** Display math on lines of its own (`$$` or `\\[` ... `$$` or `\\]`). */
  | { type: "math"; tex: string };

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const LIST_ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])(\s+|$)(.*)$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
/** A table's delimiter row: `| --- | :-: |`, pipes at the ends optional. */
const TABLE_DELIMITER = /^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
/** The start of display math on its own line, and the closer each opener needs. */
const MATH_OPEN = /^ {0,3}(\$\$|\\\[)(.*)$/;
const MATH_CLOSE: Record<string, string> = { $$: "$$", "\\[": "\\]" };
/** Nesting beyond this is rendered flat: a hostile reply must not build a deep recursion. */
const MAX_DEPTH = 12;

/** `href` when it is an absolute http(s) URL, else null (javascript:, data:, relative paths, junk). */
export function safeHttpUrl(href: string): string | null {
  let url: URL;
  try {
    url = new URL(href.trim());
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

export function parseMarkdown(text: string): Block[] {
  return parseBlocks(text.replace(/\r\n?/g, "\n").split("\n"), 0);
}

function parseBlocks(lines: string[], depth: number): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === "") {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      i = parseFence(lines, i, fence[1]!, fence[2]!, blocks);
      continue;
    }
    const math = readMathBlock(lines, i);
    if (math) {
      blocks.push({ type: "math", tex: math.tex });
      i = math.end;
      continue;
    }
    if (tableStartsAt(lines, i)) {
      i = parseTable(lines, i, depth, blocks);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({
        type: "heading",
        level: heading[1]!.length,
        children: parseInline(heading[2] ?? "", depth),
      });
      i++;
      continue;
    }
    if (RULE.test(line)) {
      blocks.push({ type: "rule" });
      i++;
      continue;
    }
    if (depth < MAX_DEPTH && QUOTE.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i]!)) quoted.push(QUOTE.exec(lines[i++]!)![1]!);
      blocks.push({ type: "quote", children: parseBlocks(quoted, depth + 1) });
      continue;
    }
    if (depth < MAX_DEPTH && LIST_ITEM.test(line)) {
      i = parseList(lines, i, depth, blocks);
      continue;
    }
    const paragraph: string[] = [];
    while (
      i < lines.length &&
      lines[i]!.trim() !== "" &&
      (paragraph.length === 0 ||
        !(startsBlock(lines[i]!) || tableStartsAt(lines, i) || readMathBlock(lines, i) !== null))
    ) {
      paragraph.push(lines[i++]!.trim());
    }
    blocks.push({ type: "paragraph", children: parseInline(paragraph.join("\n"), depth) });
  }
  return blocks;
}

/** Whether a line ends the paragraph before it (models often start a list right after "Steps:"). */
function startsBlock(line: string): boolean {
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || LIST_ITEM.test(line)
  );
}

/**
 * Display math from line `start` to its closer (`$$`/`\\]`, on the same line or a later one), or null: an
 * unclosed one (a stream cut mid-formula) stays text until it closes, and a blank line ends the search
 * (TeX has no blank lines inside a formula).
 */
function readMathBlock(lines: string[], start: number): { tex: string; end: number } | null {
  const open = MATH_OPEN.exec(lines[start]!);
  if (!open) return null;
  const close = MATH_CLOSE[open[1]!]!;
  const rest = open[2]!.trimEnd();
  const done = (parts: string[], end: number) => {
    const tex = parts.join("\n").trim();
    return tex === "" ? null : { tex, end };
  };
  if (rest.endsWith(close)) {
    // `$$a$$ and more` is inline math in a paragraph; `$$a$$` alone on its line is a block.
    return rest.slice(0, -close.length).includes(close)
      ? null
      : done([rest.slice(0, -close.length)], start + 1);
  }
  if (rest.includes(close)) return null;
  const body = [rest];
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!.trimEnd();
    if (line.trim() === "") return null;
    if (line.endsWith(close)) return done([...body, line.slice(0, -close.length)], i + 1);
    body.push(line);
  }
  return null;
}

/** Whether a table starts at `i`: a row with a pipe, then a delimiter row with as many cells. */
function tableStartsAt(lines: string[], i: number): boolean {
  const header = lines[i];
  const delimiter = lines[i + 1];
  if (header === undefined || delimiter === undefined || !header.includes("|")) return false;
  if (!TABLE_DELIMITER.test(delimiter) || !delimiter.includes("-")) return false;
  return splitRow(delimiter).length === splitRow(header).length;
}

/** A table row's cells: split on pipes that are not escaped (`\\|`), outer pipes dropped, cells trimmed. */
function splitRow(line: string): string[] {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells: string[] = [];
  let cell = "";
  for (let i = 0; i < row.length; i++) {
    const ch = row[i]!;
    if (ch === "\\" && row[i + 1] === "|") {
      cell += "|";
      i++;
    } else if (ch === "|") {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += ch;
    }
  }
  cells.push(cell.trim());
  return cells;
}

function alignOf(cell: string): Align {
  const left = cell.startsWith(":");
  const right = cell.endsWith(":");
  return left && right ? "center" : left ? "left" : right ? "right" : null;
}

/** A table from its header at `start` to the first blank line or line that starts another block. */
function parseTable(lines: string[], start: number, depth: number, blocks: Block[]): number {
  const align = splitRow(lines[start + 1]!).map(alignOf);
  const cellsOf = (line: string): Inline[][] => {
    const cells = splitRow(line).slice(0, align.length);
    while (cells.length < align.length) cells.push("");
    return cells.map((cell) => parseInline(cell, depth + 1));
  };
  const header = cellsOf(lines[start]!);
  const rows: Inline[][][] = [];
  let i = start + 2;
  while (i < lines.length && lines[i]!.trim() !== "" && !startsBlock(lines[i]!))
    rows.push(cellsOf(lines[i++]!));
  blocks.push({ type: "table", align, header, rows });
  return i;
}

function parseFence(lines: string[], start: number, marker: string, lang: string, blocks: Block[]): number {
  const indent = lines[start]!.length - lines[start]!.trimStart().length;
  const body: string[] = [];
  let i = start + 1;
  for (; i < lines.length; i++) {
    const trimmed = lines[i]!.trim();
    // The closing fence: the same character, at least as long, nothing after it.
    if (trimmed.startsWith(marker) && /^(`+|~+)$/.test(trimmed) && trimmed[0] === marker[0]) {
      i++;
      break;
    }
    body.push(stripIndent(lines[i]!, indent));
  }
  blocks.push({ type: "code", lang: lang.replace(/[^\w+#.-]/g, ""), text: body.join("\n") });
  return i;
}

function stripIndent(line: string, count: number): string {
  let n = 0;
  while (n < count && line[n] === " ") n++;
  return line.slice(n);
}

/** One list (items of the same kind); each item's lines, indentation removed, are parsed as blocks. */
function parseList(lines: string[], start: number, depth: number, blocks: Block[]): number {
  const first = LIST_ITEM.exec(lines[start]!)!;
  const ordered = /\d/.test(first[2]!);
  const baseIndent = first[1]!.length;
  const items: string[][] = [];
  let contentIndent = 0;
  let i = start;
  let previousBlank = false;
  while (i < lines.length) {
    const line = lines[i]!;
    const item = LIST_ITEM.exec(line);
    const indent = line.length - line.trimStart().length;
    if (item && item[1]!.length <= baseIndent + 1 && /\d/.test(item[2]!) === ordered) {
      // A sibling item: "- " at the list's own indentation.
      contentIndent = item[1]!.length + item[2]!.length + Math.min(item[3]!.length, 4);
      items.push([item[4]!]);
      previousBlank = false;
    } else if (line.trim() === "") {
      items[items.length - 1]!.push("");
      previousBlank = true;
    } else if (indent >= Math.min(contentIndent, baseIndent + 2)) {
      // Belongs to the current item (a nested list, a continued paragraph, a code block).
      items[items.length - 1]!.push(stripIndent(line, contentIndent));
      previousBlank = false;
    } else if (!previousBlank && !startsBlock(line)) {
      // A lazy continuation of the item's paragraph.
      items[items.length - 1]!.push(line.trim());
    } else {
      break;
    }
    i++;
  }
  blocks.push({
    type: "list",
    ordered,
    start: ordered ? Number.parseInt(first[2]!, 10) : 1,
    items: items.map((itemLines) => parseBlocks(itemLines, depth + 1)),
  });
  return i;
}

/** Characters a backslash may escape (CommonMark's ASCII punctuation). */
const ESCAPABLE = /[!-/:-@[-`{-~]/;
const BARE_URL = /^https?:\/\/[^\s<>"'`]+/;

export function parseInline(text: string, depth = 0): Inline[] {
  const out: Inline[] = [];
  let plain = "";
  const flush = () => {
    if (plain !== "") out.push({ type: "text", text: plain });
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "$" || (ch === "\\" && (text[i + 1] === "(" || text[i + 1] === "["))) {
      const math = mathAt(text, i);
      if (math) {
        flush();
        out.push(math.node);
        i = math.end;
        continue;
      }
    }
    if (ch === "\\" && i + 1 < text.length && ESCAPABLE.test(text[i + 1]!)) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === "\n") {
      flush();
      out.push({ type: "break" });
      i++;
      continue;
    }
    if (ch === "`") {
      const run = /^`+/.exec(text.slice(i))![0];
      const close = text.indexOf(run, i + run.length);
      if (close !== -1) {
        flush();
        out.push({ type: "code", text: trimCodeSpan(text.slice(i + run.length, close)) });
        i = close + run.length;
        continue;
      }
      plain += run;
      i += run.length;
      continue;
    }
    if ((ch === "*" || ch === "_") && depth < MAX_DEPTH) {
      const span = emphasis(text, i, depth);
      if (span) {
        flush();
        out.push(span.node);
        i = span.end;
        continue;
      }
    }
    if (ch === "[" && depth < MAX_DEPTH) {
      const link = linkAt(text, i, depth);
      if (link) {
        flush();
        out.push(link.node);
        i = link.end;
        continue;
      }
    }
    if (ch === "h" && (i === 0 || !/\w/.test(text[i - 1]!))) {
      const bare = BARE_URL.exec(text.slice(i));
      if (bare) {
        // Trailing punctuation belongs to the sentence, not the URL.
        const url = bare[0].replace(/[.,;:!?)\]]+$/, "");
        const href = safeHttpUrl(url);
        if (href) {
          flush();
          out.push({ type: "link", href, children: [{ type: "text", text: url }] });
          i += url.length;
          continue;
        }
      }
    }
    plain += ch;
    i++;
  }
  flush();
  return out;
}

/**
 * Math starting at `start`: `\\(tex\\)`, `\\[tex\\]`, `$$tex$$`, or `$tex$` under pandoc's rule that keeps
 * prices plain: the opening `$` is followed by a non-space, the closing one follows a non-space and is not
 * followed by a digit ("from $5 to $10" is text). Null when there is no closer (the `$` is plain).
 */
function mathAt(text: string, start: number): { node: Inline; end: number } | null {
  const pair = (open: string, close: string, display: boolean) => {
    const end = text.indexOf(close, start + open.length);
    if (end === -1) return null;
    const tex = text.slice(start + open.length, end).trim();
    return tex === "" ? null : { node: { type: "math" as const, tex, display }, end: end + close.length };
  };
  if (text.startsWith("\\(", start)) return pair("\\(", "\\)", false);
  if (text.startsWith("\\[", start)) return pair("\\[", "\\]", true);
  if (text.startsWith("$$", start)) return pair("$$", "$$", true);
  const first = text[start + 1];
  if (first === undefined || /\s/.test(first)) return null;
  for (let close = text.indexOf("$", start + 1); close !== -1; close = text.indexOf("$", close + 1)) {
    if (text[close - 1] === "\\") continue;
    if (/\s/.test(text[close - 1]!) || /\d/.test(text[close + 1] ?? "")) return null;
    if (text.slice(start + 1, close).includes("\n\n")) return null;
    return { node: { type: "math", tex: text.slice(start + 1, close), display: false }, end: close + 1 };
  }
  return null;
}

function trimCodeSpan(code: string): string {
  return code.length > 2 && code.startsWith(" ") && code.endsWith(" ") ? code.slice(1, -1) : code;
}

/** `**strong**`, `__strong__`, `*em*`, `_em_` starting at `start`, or null when it is a plain character. */
function emphasis(text: string, start: number, depth: number): { node: Inline; end: number } | null {
  const ch = text[start]!;
  const double = text[start + 1] === ch;
  const marker = double ? ch + ch : ch;
  const after = text[start + marker.length];
  if (after === undefined || /\s/.test(after)) return null;
  // `_` inside a word (snake_case) is not emphasis.
  if (ch === "_" && start > 0 && /\w/.test(text[start - 1]!)) return null;
  let search = start + marker.length;
  while (search < text.length) {
    let close = text.indexOf(marker, search);
    if (close === -1) return null;
    // `**bold *italic***`: the strong closes on the last two of the run, after the inner em's `*`.
    if (double) while (text[close + 2] === ch) close++;
    const before = text[close - 1]!;
    const next = text[close + marker.length];
    const closesHere =
      close > start + marker.length &&
      !/\s/.test(before) &&
      (ch !== "_" || next === undefined || !/\w/.test(next)) &&
      // `*a **b** c*`: a single `*` must not close on half of a `**`.
      (double || text[close + 1] !== ch);
    if (closesHere) {
      const children = parseInline(text.slice(start + marker.length, close), depth + 1);
      return { node: { type: double ? "strong" : "em", children }, end: close + marker.length };
    }
    search = close + (double || text[close + 1] !== ch ? 1 : 2);
  }
  return null;
}

/** `[label](http(s)://...)`; other schemes stay plain text. */
function linkAt(text: string, start: number, depth: number): { node: Inline; end: number } | null {
  const labelEnd = text.indexOf("](", start + 1);
  if (labelEnd === -1 || text.slice(start + 1, labelEnd).includes("\n")) return null;
  const hrefEnd = text.indexOf(")", labelEnd + 2);
  if (hrefEnd === -1) return null;
  const target = text.slice(labelEnd + 2, hrefEnd).trim();
  // `[a](https://x.org "title")`: the title is dropped.
  const href = safeHttpUrl(target.split(/\s+/)[0] ?? "");
  if (href === null) return null;
  const label = text.slice(start + 1, labelEnd);
  const children = parseInline(label, depth + 1).filter((n) => n.type !== "link");
  return { node: { type: "link", href, children }, end: hrefEnd + 1 };
}

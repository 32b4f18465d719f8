/**
 * A fast encoder for SentencePiece-style BPE tokenizer.json files (Llama, Llama-2, Mistral, OpenChat): a normalizer
 * made of `Prepend` / `Replace` (" " -> "▁") and no pre-tokenizer (the legacy conversion), or no normalizer and a
 * `Metaspace` pre-tokenizer (the newer one), a `BPE` model with byte fallback. It gives the ids
 * @huggingface/tokenizers gives, bit for bit, and is what the server's tokenizer runs for such models.
 *
 * Why: with no pre-tokenizer that library runs BPE over the whole prompt as one word, looking each candidate pair up
 * by `JSON.stringify([a, b])`, and caches nothing above 256 characters: ~20 ms for a 512-token prompt on one core
 * (the serving benchmark's random prompts; English ~9 ms), time that a burst of requests spends queued before the
 * engine sees them. Here symbols are interned to integers (a pair is looked up in an integer hash table), the merges
 * run on reused typed arrays through a binary heap, and the text is cut before each "▁" that follows another
 * character when no merge can join across such a cut (`joinsWords`, checked on the merges at load; `encodePiece`),
 * each word's ids cached.
 *
 * The merge order is the library's: the pair of lowest rank first, ties to the leftmost (the library scores a pair
 * rank + position / length). Tokens are then looked up as the library does: a token the vocabulary lacks becomes its
 * UTF-8 bytes `<0xXX>` when byte fallback is on and every byte token exists, else the unknown token; with `fuse_unk`
 * a run of unknown tokens is one.
 *
 * Added tokens (`<s>`, `<|end_of_turn|>`, ...) written in the text are cut out as the library cuts them (the longest
 * match at the leftmost position, their lstrip / rstrip, normalized ones matched in the normalized text), and each
 * piece between them is normalized and encoded on its own. `SentencePieceBpe.from` returns null for a tokenizer of
 * any other form, which then stays on the library.
 */

type JsonObject = Record<string, unknown>;

/** The metaspace character SentencePiece writes for a space. */
const METASPACE = "\u2581";
/** Words whose ids are kept (cleared when full). */
const WORD_CACHE_ENTRIES = 1 << 15;
/** Words longer than this (UTF-16 units) are not cached. */
const WORD_CACHE_MAX_LENGTH = 64;

type NormalizeStep = (text: string) => string;

export class SentencePieceBpe {
  /** Word -> its ids (no BOS), for words up to WORD_CACHE_MAX_LENGTH. */
  private readonly wordCache = new Map<string, number[]>();
  /** Symbol id -> its ids as output (vocabulary id, byte-fallback ids or unk), filled on first use. */
  private readonly symbolOutput: (number[] | undefined)[] = [];
  /** Output ids of characters that no merge uses (not interned). */
  private readonly loneCharOutput = new Map<string, number[]>();
  private readonly utf8 = new TextEncoder();
  /** The interned symbol of each UTF-16 unit as a character (-2: not looked up yet). */
  private readonly unitSymbol = new Int32Array(65536).fill(-2);
  /** Buffers of runMerges, reused from word to word. */
  private readonly scratch = new MergeScratch();

  private constructor(
    private readonly normalizeSteps: readonly NormalizeStep[],
    /** The Metaspace pre-tokenizer, or null for none. */
    private readonly metaspace: MetaspaceConfig | null,
    /** Cuts the raw text at added tokens that are not normalized, and the normalized pieces at those that are. */
    private readonly rawSplitter: ContentSplitter,
    private readonly normalizedSplitter: ContentSplitter,
    /** The library's added_tokens_map: content (and normalized content) -> the token. */
    private readonly added: Map<string, AddedToken>,
    /** Interned symbols: every part and result of a merge. */
    private readonly symbolIds: Map<string, number>,
    private readonly symbols: readonly string[],
    /** (left symbol, right symbol) -> index into mergeRank / mergeResult. */
    private readonly pairs: PairTable,
    private readonly mergeRank: Int32Array,
    private readonly mergeResult: Int32Array,
    /** The library's tokens_to_ids: vocabulary, then added tokens over it. */
    private readonly tokenIds: Map<string, number>,
    private readonly byteFallback: boolean,
    private readonly unkId: number,
    private readonly fuseUnk: boolean,
    /** Whether the normalized text may be cut before a "▁" that follows another character. */
    private readonly splitWords: boolean,
  ) {}

  /**
   * The encoder for `tokenizerJson` (its added_tokens already complete) and tokenizer_config.json, or null when the
   * tokenizer is not of the form this class reproduces exactly.
   */
  static from(tokenizerJson: JsonObject, tokenizerConfig: JsonObject): SentencePieceBpe | null {
    const model = tokenizerJson.model as JsonObject | undefined;
    if (model === undefined || model === null || model.type !== "BPE") return null;
    const metaspace = metaspaceConfig(tokenizerJson.pre_tokenizer);
    if (metaspace === undefined) return null;
    for (const key of [
      "dropout",
      "continuing_subword_prefix",
      "continuing_subword_suffix",
      "end_of_word_suffix",
    ]) {
      if (model[key] !== null && model[key] !== undefined && model[key] !== "") return null;
    }
    if (model.ignore_merges === true) return null;
    if (tokenizerConfig.remove_space === true || tokenizerConfig.do_lowercase_and_remove_accent === true)
      return null;
    const vocab = model.vocab;
    if (vocab === null || typeof vocab !== "object" || Array.isArray(vocab)) return null;
    if (!Array.isArray(model.merges)) return null;
    const normalizeSteps = normalizerSteps(tokenizerJson.normalizer);
    if (normalizeSteps === null) return null;
    const normalize = (text: string) => applySteps(normalizeSteps, text);

    const tokenIds = new Map<string, number>();
    const vocabObject = vocab as JsonObject;
    for (const token of Object.keys(vocabObject)) {
      const id = vocabObject[token];
      if (typeof id !== "number") return null;
      tokenIds.set(token, id);
    }
    const unkToken = model.unk_token;
    const modelUnkId = typeof unkToken === "string" ? tokenIds.get(unkToken) : undefined;
    if (modelUnkId === undefined) return null;

    const added = new Map<string, AddedToken>();
    const rawContents: string[] = [];
    const normalizedContents: string[] = [];
    const hasNormalizer = tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined;
    for (const entry of (tokenizerJson.added_tokens ?? []) as JsonObject[]) {
      if (typeof entry?.content !== "string" || typeof entry.id !== "number") return null;
      const special = entry.special === true;
      const token: AddedToken = {
        id: entry.id,
        lstrip: entry.lstrip === true,
        rstrip: entry.rstrip === true,
      };
      tokenIds.set(entry.content, entry.id);
      added.set(entry.content, token);
      const normalized = typeof entry.normalized === "boolean" ? entry.normalized : !special;
      if (normalized && hasNormalizer) {
        const form = normalize(entry.content);
        normalizedContents.push(form);
        added.set(form, token);
      } else {
        rawContents.push(entry.content);
      }
    }
    // The unknown token as output must map back to the model's unk id, or fused runs would differ.
    if ((added.get(unkToken as string)?.id ?? tokenIds.get(unkToken as string)) !== modelUnkId) return null;

    // Merges: later duplicates win (the library builds a Map in order).
    const symbolIds = new Map<string, number>();
    const symbols: string[] = [];
    const intern = (s: string) => {
      let id = symbolIds.get(s);
      if (id === undefined) {
        id = symbols.length;
        symbols.push(s);
        symbolIds.set(s, id);
      }
      return id;
    };
    const mergeCount = model.merges.length;
    // lefts / rights / ranks / results [mergeCount]: each usable merge's symbols, rank and merged symbol
    const lefts = new Int32Array(mergeCount);
    const rights = new Int32Array(mergeCount);
    const ranks = new Int32Array(mergeCount);
    const results = new Int32Array(mergeCount);
    let count = 0;
    let splitWords = true;
    for (let rank = 0; rank < mergeCount; rank++) {
      const merge = model.merges[rank] as unknown;
      let left: string;
      let right: string;
      if (Array.isArray(merge)) {
        if (merge.length !== 2 || typeof merge[0] !== "string" || typeof merge[1] !== "string") return null;
        [left, right] = merge as [string, string];
      } else if (typeof merge === "string") {
        const space = merge.indexOf(" ");
        if (space < 0) continue; // the library's key never matches a pair
        left = merge.slice(0, space);
        // split(" ", 2): the right part ends at a second space, if any
        const end = merge.indexOf(" ", space + 1);
        right = end < 0 ? merge.slice(space + 1) : merge.slice(space + 1, end);
      } else {
        return null;
      }
      const result = left + right;
      if (splitWords && joinsWords(result)) splitWords = false;
      lefts[count] = intern(left);
      rights[count] = intern(right);
      ranks[count] = rank;
      results[count] = intern(result);
      count++;
    }
    const table = new PairTable(count);
    const mergeRank = new Int32Array(count);
    const mergeResult = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const known = table.get(lefts[i], rights[i]);
      const slot = known >= 0 ? known : i;
      if (known < 0) table.set(lefts[i], rights[i], slot);
      mergeRank[slot] = ranks[i];
      mergeResult[slot] = results[i];
    }
    return new SentencePieceBpe(
      normalizeSteps,
      metaspace,
      new ContentSplitter(rawContents),
      new ContentSplitter(normalizedContents),
      added,
      symbolIds,
      symbols,
      table,
      mergeRank,
      mergeResult,
      tokenIds,
      model.byte_fallback === true,
      modelUnkId,
      model.fuse_unk === true,
      splitWords,
    );
  }

  /** Text -> ids, special tokens only where the text writes them (no BOS added): the library's encode_text. */
  encode(text: string): number[] {
    const ids: number[] = [];
    this.splitAtAdded(this.rawSplitter, text, ids, (section, sectionIndex) => {
      const normalized = applySteps(this.normalizeSteps, section);
      if (normalized.length === 0) return;
      this.splitAtAdded(this.normalizedSplitter, normalized, ids, (piece) => {
        const word = this.metaspace === null ? piece : metaspaceWord(piece, this.metaspace, sectionIndex);
        const start = ids.length;
        this.encodePiece(word, ids);
        if (this.fuseUnk) fuseRuns(ids, start, this.unkId);
      });
    });
    return ids;
  }

  /**
   * Cuts text at the splitter's added tokens: their ids go to ids, each non-empty piece between them to encode, with
   * its index among the parts (added tokens and empty parts counted, as the library's section_index).
   */
  private splitAtAdded(
    splitter: ContentSplitter,
    text: string,
    ids: number[],
    encode: (piece: string, index: number) => void,
  ): void {
    const parts = splitter.split(text);
    this.stripAroundAdded(parts);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part.length === 0) continue;
      const token = this.added.get(part);
      if (token !== undefined) ids.push(token.id);
      else encode(part, i);
    }
  }

  /** lstrip / rstrip: an added token's neighbours lose their whitespace on its side (in place, in order). */
  private stripAroundAdded(parts: string[]): void {
    for (let i = 0; i < parts.length; i++) {
      const token = this.added.get(parts[i]);
      if (token === undefined) continue;
      if (token.lstrip && i > 0) parts[i - 1] = parts[i - 1].trimEnd();
      if (token.rstrip && i < parts.length - 1) parts[i + 1] = parts[i + 1].trimStart();
    }
  }

  /** One normalized piece (no added token in it) through BPE, cut into words no merge joins. */
  private encodePiece(piece: string, ids: number[]): void {
    if (!this.splitWords) {
      this.runMerges(piece, ids);
      return;
    }
    let start = 0;
    for (let i = 1; i < piece.length; i++) {
      if (piece[i] === METASPACE && piece[i - 1] !== METASPACE) {
        this.encodeWord(piece.slice(start, i), ids);
        start = i;
      }
    }
    this.encodeWord(piece.slice(start), ids);
  }

  private encodeWord(word: string, out: number[]): void {
    if (word.length > WORD_CACHE_MAX_LENGTH) {
      this.runMerges(word, out);
      return;
    }
    let cached = this.wordCache.get(word);
    if (cached === undefined) {
      cached = [];
      this.runMerges(word, cached);
      if (this.wordCache.size >= WORD_CACHE_ENTRIES) this.wordCache.clear();
      this.wordCache.set(word, cached);
    }
    for (const id of cached) out.push(id);
  }

  /** BPE over one word (its characters), the resulting tokens' ids appended to out. */
  private runMerges(word: string, out: number[]): void {
    const w = this.scratch.reserve(word.length);
    // symbol [n]: interned id of each position's symbol (-1: a character no merge uses); offset [n]: where its
    // character starts in word; next / prev [n]: the linked list of live positions (-1 at the ends); version [n]
    // invalidates heap entries of a position whose pair changed; alive [n].
    const { symbol, offset, next, prev, version, alive, heap } = w;
    let n = 0;
    for (let i = 0; i < word.length; n++) {
      const code = word.charCodeAt(i);
      offset[n] = i;
      if (code >= 0xd800 && code <= 0xdbff && i + 1 < word.length) {
        const low = word.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          symbol[n] = this.symbolIds.get(word.slice(i, i + 2)) ?? -1;
          i += 2;
          continue;
        }
      }
      symbol[n] = this.symbolOfUnit(code);
      i++;
    }
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
      version[i] = 0;
      alive[i] = 1;
    }
    heap.clear();
    for (let i = 0; i + 1 < n; i++) this.pushPair(i, n, w);
    while (heap.size > 0) {
      const pos = heap.topKey() % n;
      const ver = heap.topVersion();
      const slot = heap.topSlot();
      heap.pop();
      const right = next[pos];
      if (!alive[pos] || version[pos] !== ver || right < 0) continue;
      symbol[pos] = this.mergeResult[slot];
      alive[right] = 0;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      version[pos]++;
      const before = prev[pos];
      if (before >= 0) {
        version[before]++;
        this.pushPair(before, n, w);
      }
      this.pushPair(pos, n, w);
    }
    for (let pos = 0; pos >= 0; pos = next[pos]) {
      const ids =
        symbol[pos] >= 0
          ? this.outputOfSymbol(symbol[pos])
          : this.outputOfLoneChar(word.slice(offset[pos], pos + 1 < n ? offset[pos + 1] : word.length));
      for (const id of ids) out.push(id);
    }
  }

  /** Queues the merge of pos with its right neighbour, if there is one for the pair. */
  private pushPair(pos: number, n: number, w: MergeScratch): void {
    const right = w.next[pos];
    if (right < 0) return;
    const left = w.symbol[pos];
    const rightSymbol = w.symbol[right];
    if (left < 0 || rightSymbol < 0) return;
    const slot = this.pairs.get(left, rightSymbol);
    if (slot >= 0) w.heap.push(this.mergeRank[slot] * n + pos, w.version[pos], slot);
  }

  /** The interned symbol of a one-unit character (BMP, or a lone surrogate), -1 when no merge uses it. */
  private symbolOfUnit(code: number): number {
    let id = this.unitSymbol[code];
    if (id === -2) {
      id = this.symbolIds.get(String.fromCharCode(code)) ?? -1;
      this.unitSymbol[code] = id;
    }
    return id;
  }

  private outputOfSymbol(id: number): number[] {
    let ids = this.symbolOutput[id];
    if (ids === undefined) {
      ids = this.outputOf(this.symbols[id]);
      this.symbolOutput[id] = ids;
    }
    return ids;
  }

  private outputOfLoneChar(char: string): number[] {
    let ids = this.loneCharOutput.get(char);
    if (ids === undefined) {
      ids = this.outputOf(char);
      this.loneCharOutput.set(char, ids);
    }
    return ids;
  }

  /** The ids a BPE token becomes: itself, its UTF-8 bytes (byte fallback), or unk. */
  private outputOf(token: string): number[] {
    if (this.tokenIds.has(token)) return [this.idOf(token)];
    if (this.byteFallback) {
      const bytes = Array.from(
        this.utf8.encode(token),
        (b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
      );
      if (bytes.every((b) => this.tokenIds.has(b))) return bytes.map((b) => this.idOf(b));
    }
    return [this.unkId];
  }

  private idOf(token: string): number {
    return this.added.get(token)?.id ?? (this.tokenIds.get(token) as number);
  }
}

/** The normalizer's steps in order. */
function applySteps(steps: readonly NormalizeStep[], text: string): string {
  let t = text;
  for (const step of steps) t = step(t);
  return t;
}

/** The normalizer as steps, or null for a normalizer other than Prepend / Replace (string pattern) / their Sequence. */
function normalizerSteps(config: unknown): NormalizeStep[] | null {
  if (config === null || config === undefined) return [];
  const c = config as JsonObject;
  if (c.type === "Sequence") {
    if (!Array.isArray(c.normalizers)) return null;
    const steps: NormalizeStep[] = [];
    for (const inner of c.normalizers) {
      if (inner === null) continue;
      const s = normalizerSteps(inner);
      if (s === null) return null;
      steps.push(...s);
    }
    return steps;
  }
  if (c.type === "Prepend" && typeof c.prepend === "string") {
    const prepend = c.prepend;
    return [(t) => prepend + t];
  }
  if (c.type === "Replace") {
    const pattern = c.pattern as JsonObject | undefined;
    if (
      pattern === undefined ||
      pattern === null ||
      typeof pattern.String !== "string" ||
      pattern.String === ""
    )
      return null;
    if (pattern.String.length !== [...pattern.String].length) return null; // surrogates: the library's /u regex
    const from = pattern.String;
    const to = typeof c.content === "string" ? c.content : "";
    return [(t) => t.replaceAll(from, to)];
  }
  return null;
}

interface MetaspaceConfig {
  replacement: string;
  /** What a space becomes (the library's str_rep || replacement). */
  strRep: string;
  /** "always", "first" (the first section only) or anything else (never), as the library reads it. */
  prependScheme: string;
}

/**
 * The pre-tokenizer as this encoder runs it: null for none, a MetaspaceConfig for a lone Metaspace, undefined for any
 * other. The library's Metaspace never splits (its `split` flag is not read), so it only rewrites the piece.
 */
function metaspaceConfig(config: unknown): MetaspaceConfig | null | undefined {
  if (config === null || config === undefined) return null;
  const c = config as JsonObject;
  if (c.type !== "Metaspace") return undefined;
  const replacement = c.replacement ?? METASPACE;
  if (typeof replacement !== "string" || replacement.length === 0) return undefined;
  const strRep = typeof c.str_rep === "string" && c.str_rep !== "" ? c.str_rep : replacement;
  const prependScheme = c.prepend_scheme ?? "always";
  if (typeof prependScheme !== "string") return undefined;
  return { replacement, strRep, prependScheme };
}

/** The library's Metaspace.pre_tokenize_text: spaces replaced, and the prefix added where its scheme asks. */
function metaspaceWord(piece: string, m: MetaspaceConfig, sectionIndex: number): string {
  let word = piece.replaceAll(" ", m.strRep);
  if (
    !word.startsWith(m.replacement) &&
    (m.prependScheme === "always" || (m.prependScheme === "first" && sectionIndex === 0))
  ) {
    word = m.strRep + word;
  }
  return word;
}

/** Whether a merge result holds "▁" after another character: then a merge can cross the cut encode makes. */
function joinsWords(token: string): boolean {
  for (let i = token.indexOf(METASPACE, 1); i > 0; i = token.indexOf(METASPACE, i + 1)) {
    if (token[i - 1] !== METASPACE) return true;
  }
  return false;
}

/** fuse_unk: a run of unknown tokens in ids[start..] becomes one (in place). */
function fuseRuns(ids: number[], start: number, unkId: number): void {
  if (ids.indexOf(unkId, start) < 0) return;
  let w = start;
  for (let r = start; r < ids.length; r++) {
    if (ids[r] === unkId && r > start && ids[r - 1] === unkId) continue;
    ids[w++] = ids[r];
  }
  ids.length = w;
}

interface AddedToken {
  id: number;
  lstrip: boolean;
  rstrip: boolean;
}

/**
 * The library's DictionarySplitter: from each position the longest added-token content that starts there, scanning
 * left to right; the text between matches is kept as pieces.
 */
class ContentSplitter {
  private readonly root: TrieNode = { next: new Map(), end: null };
  private readonly empty: boolean;

  constructor(contents: readonly string[]) {
    for (const content of contents) {
      let node = this.root;
      for (let i = 0; i < content.length; i++) {
        let child = node.next.get(content[i]);
        if (child === undefined) {
          child = { next: new Map(), end: null };
          node.next.set(content[i], child);
        }
        node = child;
      }
      if (content.length > 0) node.end = content;
    }
    this.empty = this.root.next.size === 0;
  }

  split(text: string): string[] {
    if (this.empty) return text.length > 0 ? [text] : [];
    const parts: string[] = [];
    const n = text.length;
    let start = 0;
    let i = 0;
    while (i < n) {
      let node: TrieNode | undefined = this.root;
      let match: string | null = null;
      for (let j = i; j < n; j++) {
        node = node.next.get(text[j]);
        if (node === undefined) break;
        if (node.end !== null) match = node.end;
      }
      if (match !== null) {
        if (i > start) parts.push(text.slice(start, i));
        parts.push(match);
        i += match.length;
        start = i;
      } else {
        i++;
      }
    }
    if (start < n) parts.push(text.slice(start));
    return parts;
  }
}

interface TrieNode {
  next: Map<string, TrieNode>;
  end: string | null;
}

/** Open-addressing hash of (left, right) symbol pairs -> merge slot (Smi keys: no Map of doubles). */
class PairTable {
  private readonly mask: number;
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly slots: Int32Array;

  constructor(entries: number) {
    let capacity = 16;
    while (capacity < entries * 2) capacity *= 2;
    this.mask = capacity - 1;
    this.lefts = new Int32Array(capacity).fill(-1);
    this.rights = new Int32Array(capacity);
    this.slots = new Int32Array(capacity);
  }

  private static hash(left: number, right: number): number {
    return (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
  }

  /** The slot of the pair, or -1. */
  get(left: number, right: number): number {
    for (let i = PairTable.hash(left, right) & this.mask; ; i = (i + 1) & this.mask) {
      const l = this.lefts[i];
      if (l === -1) return -1;
      if (l === left && this.rights[i] === right) return this.slots[i];
    }
  }

  set(left: number, right: number, slot: number): void {
    let i = PairTable.hash(left, right) & this.mask;
    while (this.lefts[i] !== -1 && (this.lefts[i] !== left || this.rights[i] !== right))
      i = (i + 1) & this.mask;
    this.lefts[i] = left;
    this.rights[i] = right;
    this.slots[i] = slot;
  }
}

/** runMerges' per-position arrays and heap, grown to the longest word seen. */
class MergeScratch {
  symbol = new Int32Array(0);
  offset = new Int32Array(0);
  next = new Int32Array(0);
  prev = new Int32Array(0);
  version = new Int32Array(0);
  alive = new Uint8Array(0);
  readonly heap = new PairHeap(64);

  /** Room for a word of `units` UTF-16 units (at most that many positions). */
  reserve(units: number): this {
    if (this.symbol.length < units) {
      const n = Math.max(units, 2 * this.symbol.length, 64);
      this.symbol = new Int32Array(n);
      this.offset = new Int32Array(n);
      this.next = new Int32Array(n);
      this.prev = new Int32Array(n);
      this.version = new Int32Array(n);
      this.alive = new Uint8Array(n);
    }
    return this;
  }
}

/** A binary min-heap of merge candidates: key = rank * wordLength + position, with its version and merge slot. */
class PairHeap {
  size = 0;
  private keys: Float64Array;
  private versions: Int32Array;
  private slots: Int32Array;

  constructor(capacity: number) {
    const c = Math.max(16, capacity);
    this.keys = new Float64Array(c);
    this.versions = new Int32Array(c);
    this.slots = new Int32Array(c);
  }

  clear(): void {
    this.size = 0;
  }

  topKey(): number {
    return this.keys[0];
  }

  topVersion(): number {
    return this.versions[0];
  }

  topSlot(): number {
    return this.slots[0];
  }

  push(key: number, version: number, slot: number): void {
    if (this.size === this.keys.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.keys[parent] <= key) break;
      this.move(parent, i);
      i = parent;
    }
    this.place(i, key, version, slot);
  }

  pop(): void {
    const last = --this.size;
    if (last === 0) return;
    const key = this.keys[last];
    const version = this.versions[last];
    const slot = this.slots[last];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.keys[child + 1] < this.keys[child]) child++;
      if (this.keys[child] >= key) break;
      this.move(child, i);
      i = child;
    }
    this.place(i, key, version, slot);
  }

  private move(from: number, to: number): void {
    this.place(to, this.keys[from], this.versions[from], this.slots[from]);
  }

  private place(i: number, key: number, version: number, slot: number): void {
    this.keys[i] = key;
    this.versions[i] = version;
    this.slots[i] = slot;
  }

  private grow(): void {
    const c = this.keys.length * 2;
    const keys = new Float64Array(c);
    keys.set(this.keys);
    const versions = new Int32Array(c);
    versions.set(this.versions);
    const slots = new Int32Array(c);
    slots.set(this.slots);
    this.keys = keys;
    this.versions = versions;
    this.slots = slots;
  }
}

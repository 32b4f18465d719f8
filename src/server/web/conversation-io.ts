/**
 * Conversations as the page keeps them, and their JSON export/import. Pure (no DOM), so unit tests run it.
 * Import reads our own export, a bare list of conversations, one conversation, or llama.cpp web UI's export
 * of one conversation ({ conv, messages }); anything else is an ImportError naming the path of what is wrong.
 */

export interface MessageStats {
  completionTokens: number;
  timeToFirstTokenMs: number | null;
  tokensPerSecond: number | null;
  /** "stop", "length", "abort", ... ; null when the stream ended without one. */
  finishReason: string | null;
}

export interface StoredMessage {
  id: string;
  role: "user" | "assistant";
  content: string;
  createdAt: number;
  /** An answer's timing and token count, when it was generated here. */
  stats?: MessageStats;
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  messages: StoredMessage[];
}

export const EXPORT_FORMAT = "awq-ts-chats";
const TITLE_CHARS = 60;

/** A random id; crypto.randomUUID needs a secure context, which a page opened over plain http lacks. */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A title from the first user message: its first line, cut at a word near 60 characters. */
export function titleFrom(text: string): string {
  const line = text.trim().split("\n")[0]!.replace(/\s+/g, " ");
  if (line.length <= TITLE_CHARS) return line || "New chat";
  const cut = line.slice(0, TITLE_CHARS);
  const space = cut.lastIndexOf(" ");
  return `${space > 30 ? cut.slice(0, space) : cut}…`;
}

export function exportJson(conversations: readonly Conversation[], now = new Date()): string {
  return `${JSON.stringify({ format: EXPORT_FORMAT, version: 1, exportedAt: now.toISOString(), conversations }, null, 2)}\n`;
}

export class ImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImportError";
  }
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/** Conversations from an export file's text; throws ImportError naming what is wrong and where. */
export function parseImport(text: string, now = Date.now()): Conversation[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ImportError(`not JSON: ${(err as Error).message}`);
  }
  if (Array.isArray(data)) return data.map((c, i) => conversationOf(c, `[${i}]`, now));
  if (!isObject(data)) throw new ImportError("expected an object or a list of conversations");
  if ("conversations" in data) {
    if (!Array.isArray(data.conversations)) throw new ImportError("conversations must be a list");
    return data.conversations.map((c, i) => conversationOf(c, `conversations[${i}]`, now));
  }
  if (isObject(data.conv) && Array.isArray(data.messages)) {
    // llama.cpp's web UI: { conv: { id, name, lastModified }, messages: [{ role, content, timestamp }] }
    // (its tree's root message has role "system" and no text: skipped with the other non-chat roles).
    const messages = data.messages.filter(
      (m) => isObject(m) && (m.role === "user" || m.role === "assistant"),
    );
    return [
      conversationOf({ title: data.conv.name, updatedAt: data.conv.lastModified, messages }, "conv", now),
    ];
  }
  if ("messages" in data) return [conversationOf(data, "", now)];
  throw new ImportError("expected { conversations: [...] }, a list of conversations, or one with messages");
}

function conversationOf(value: unknown, path: string, now: number): Conversation {
  const at = (field: string) => (path === "" ? field : `${path}.${field}`);
  if (!isObject(value)) throw new ImportError(`${path || "the file"}: expected a conversation object`);
  if (!Array.isArray(value.messages)) throw new ImportError(`${at("messages")}: must be a list`);
  const messages = value.messages.map((m, i) => messageOf(m, `${at("messages")}[${i}]`, now));
  const title = value.title ?? value.name;
  if (title !== undefined && typeof title !== "string")
    throw new ImportError(`${at("title")}: must be a string`);
  const firstUser = messages.find((m) => m.role === "user");
  const updatedAt = timeOf(value.updatedAt, now);
  return {
    id: typeof value.id === "string" && /^[\w-]{1,64}$/.test(value.id) ? value.id : newId(),
    title: title?.trim() || (firstUser ? titleFrom(firstUser.content) : "Imported chat"),
    createdAt: timeOf(value.createdAt, updatedAt),
    updatedAt,
    messages,
  };
}

function messageOf(value: unknown, path: string, now: number): StoredMessage {
  if (!isObject(value)) throw new ImportError(`${path}: expected a message object`);
  if (value.role !== "user" && value.role !== "assistant")
    throw new ImportError(`${path}.role: must be "user" or "assistant", not ${JSON.stringify(value.role)}`);
  if (typeof value.content !== "string") throw new ImportError(`${path}.content: must be a string`);
  const message: StoredMessage = {
    id: typeof value.id === "string" && value.id !== "" ? value.id : newId(),
    role: value.role,
    content: value.content,
    createdAt: timeOf(value.createdAt ?? value.timestamp, now),
  };
  if (isObject(value.stats) && typeof value.stats.completionTokens === "number") {
    const s = value.stats;
    message.stats = {
      completionTokens: s.completionTokens as number,
      timeToFirstTokenMs: typeof s.timeToFirstTokenMs === "number" ? s.timeToFirstTokenMs : null,
      tokensPerSecond: typeof s.tokensPerSecond === "number" ? s.tokensPerSecond : null,
      finishReason: typeof s.finishReason === "string" ? s.finishReason : null,
    };
  }
  return message;
}

function timeOf(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}

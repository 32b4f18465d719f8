/**
 * The page's saved conversations, in the browser's IndexedDB (through the idb package, served from
 * node_modules as /assets/idb.js), so they survive reloads and restarts of the server. Where IndexedDB is
 * unavailable (some private modes) the conversations live in memory and `persistent` says so.
 */
import { type DBSchema, openDB } from "idb";
import type { Conversation } from "./conversation-io.js";

const DB_NAME = "awq-chat";
const STORE = "conversations";

interface ChatDb extends DBSchema {
  conversations: { key: string; value: Conversation; indexes: { updatedAt: number } };
}

export interface ConversationStore {
  /** False when nothing outlives the page (no IndexedDB). */
  readonly persistent: boolean;
  /** Every conversation, the most recently changed first. */
  list(): Promise<Conversation[]>;
  get(id: string): Promise<Conversation | undefined>;
  put(conversation: Conversation): Promise<void>;
  delete(id: string): Promise<void>;
}

export async function openConversationStore(): Promise<ConversationStore> {
  try {
    const db = await openDB<ChatDb>(DB_NAME, 1, {
      upgrade(database) {
        database.createObjectStore(STORE, { keyPath: "id" }).createIndex("updatedAt", "updatedAt");
      },
    });
    return {
      persistent: true,
      list: async () => (await db.getAllFromIndex(STORE, "updatedAt")).reverse(),
      get: (id) => db.get(STORE, id),
      put: async (conversation) => {
        await db.put(STORE, structuredClone(conversation));
      },
      delete: (id) => db.delete(STORE, id),
    };
  } catch {
    return memoryStore();
  }
}

function memoryStore(): ConversationStore {
  const conversations = new Map<string, Conversation>();
  return {
    persistent: false,
    list: async () => [...conversations.values()].sort((a, b) => b.updatedAt - a.updatedAt),
    get: async (id) => conversations.get(id),
    put: async (conversation) => {
      conversations.set(conversation.id, structuredClone(conversation));
    },
    delete: async (id) => {
      conversations.delete(id);
    },
  };
}

/**
 * The chat page's controller (runs in the browser as /assets/app.js): the saved conversations (IndexedDB),
 * the chat list, sending, stopping, regenerating and editing, errors, and the panels. Model text reaches
 * the DOM only through renderMarkdown (DOM nodes, never HTML); user text only through textContent.
 */
import { ChatApiError, ChatNetworkError, type ChatTurn, streamChat } from "./chat-client.js";
import { renderChatList } from "./chat-list.js";
import {
  type Conversation,
  exportJson,
  type MessageStats,
  newId,
  parseImport,
  type StoredMessage,
  titleFrom,
} from "./conversation-io.js";
import { type ConversationStore, openConversationStore } from "./conversation-store.js";
import {
  addActions,
  coarsePointer,
  type MessageActions,
  type MessageView,
  messageView,
  renderBody,
  showStats,
} from "./message-view.js";
import { SettingsError } from "./settings-fields.js";
import { SettingsPanel } from "./settings-panel.js";

const CURRENT_KEY = "awq-chat-current";
const SETTINGS_OPEN_KEY = "awq-chat-settings-open";
/** How often a streaming answer is re-rendered: often enough to look live, rarely enough to stay cheap. */
const RENDER_INTERVAL_MS = 50;
/** How often a streaming answer is saved, so a reload mid-answer loses at most this much. */
const SAVE_INTERVAL_MS = 1000;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the chat page has no #${id}`);
  return found as T;
}

const ui = {
  modelName: element<HTMLSpanElement>("model-name"),
  toggleChats: element<HTMLButtonElement>("toggle-chats"),
  chats: element<HTMLElement>("chats"),
  chatList: element<HTMLUListElement>("chat-list"),
  chatSearch: element<HTMLInputElement>("chat-search"),
  chatsNote: element<HTMLParagraphElement>("chats-note"),
  exportChats: element<HTMLButtonElement>("export-chats"),
  importChats: element<HTMLButtonElement>("import-chats"),
  importFile: element<HTMLInputElement>("import-file"),
  newChat: element<HTMLButtonElement>("new-chat"),
  toggleSettings: element<HTMLButtonElement>("toggle-settings"),
  messages: element<HTMLDivElement>("messages"),
  emptyHint: element<HTMLParagraphElement>("empty-hint"),
  error: element<HTMLDivElement>("error"),
  errorText: element<HTMLParagraphElement>("error-text"),
  errorRetry: element<HTMLButtonElement>("error-retry"),
  errorDismiss: element<HTMLButtonElement>("error-dismiss"),
  composer: element<HTMLFormElement>("composer"),
  prompt: element<HTMLTextAreaElement>("prompt"),
  send: element<HTMLButtonElement>("send"),
  stop: element<HTMLButtonElement>("stop"),
  status: element<HTMLParagraphElement>("status"),
};

const settings = new SettingsPanel((open) => {
  ui.toggleSettings.setAttribute("aria-expanded", String(open));
  try {
    localStorage.setItem(SETTINGS_OPEN_KEY, String(open));
  } catch {
    // not saved: fine
  }
});

let store: ConversationStore;
/** The conversation on screen; null until a new chat's first message. */
let current: Conversation | null = null;
let running: AbortController | null = null;
/** True from a send, regenerate or edit until its answer is saved: one at a time. */
let busy = false;
/** What Retry in the error box does, if anything. */
let retry: (() => void) | null = null;

/** Runs `task` unless another one is under way (then it is ignored, as a second click on Send is). */
async function exclusive(task: () => Promise<unknown>): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    await task();
  } finally {
    busy = false;
  }
}

const messageActions: MessageActions = {
  edit: (id, text) => void exclusive(() => editAndResend(id, text)),
  regenerate: (id) => void exclusive(() => regenerate(id)),
  remove: (id) => void exclusive(() => removeMessage(id)),
};

// --- errors and status -------------------------------------------------------------------------------

/** Shows `message` under the conversation and scrolls it into view; `onRetry` adds a Retry button. */
function showError(message: string, onRetry: (() => void) | null = null): void {
  ui.errorText.textContent = message;
  retry = onRetry;
  ui.errorRetry.hidden = onRetry === null;
  ui.error.hidden = false;
  ui.messages.append(ui.error); // always last, under the newest message
  ui.error.scrollIntoView({ block: "nearest" });
}

function clearError(): void {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
  retry = null;
}

function apiKeyProblem(err: ChatApiError): string {
  return err.code === "invalid_api_key" || /incorrect|invalid/i.test(err.message)
    ? "The server refused the API key: it is wrong. Correct it in Settings."
    : "This server needs an API key: enter it in Settings.";
}

/** What went wrong, in words a user can act on. */
function describeFailure(err: unknown): string {
  if (err instanceof ChatNetworkError)
    return `Network error talking to the server at ${location.origin}: ${err.message}. Is \`awq serve\` still running?`;
  if (err instanceof ChatApiError) {
    if (err.status === 401) return apiKeyProblem(err);
    return `The server answered ${err.status}: ${err.message}`;
  }
  if (err instanceof SettingsError) return `Settings: ${err.message}`;
  return `Something went wrong: ${err instanceof Error ? err.message : String(err)}`;
}

// --- conversations -----------------------------------------------------------------------------------

/** Whether `conversation` matches every word of the search box, in its title or any message. */
function matchesSearch(conversation: Conversation, words: string[]): boolean {
  if (words.length === 0) return true;
  const text = [conversation.title, ...conversation.messages.map((m) => m.content)].join("\n").toLowerCase();
  return words.every((word) => text.includes(word));
}

/** Bumped by each refresh: a slower earlier one (an older search) must not draw over a newer one. */
let listVersion = 0;

async function refreshChatList(): Promise<void> {
  const version = ++listVersion;
  const words = ui.chatSearch.value.toLowerCase().split(/\s+/).filter(Boolean);
  const conversations = (await store.list()).filter((c) => matchesSearch(c, words));
  if (version !== listVersion) return;
  renderChatList(ui.chatList, conversations, current?.id ?? null, {
    open: (id) => void openConversation(id),
    rename: (id, title) => void renameConversation(id, title),
    remove: (id) => void deleteConversation(id),
  });
}

/** Saves `conversation`; `touch` (a new or changed message) moves it to the top of the list. */
/** Saves in flight; body[data-saving] is set while there are any (tests wait for it to clear). */
let saving = 0;

async function save(conversation: Conversation, touch = true): Promise<void> {
  if (touch) conversation.updatedAt = Date.now();
  saving++;
  document.body.dataset.saving = "true";
  try {
    await store.put(conversation);
  } catch (err) {
    ui.status.textContent = `The chat could not be saved: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    if (--saving === 0) delete document.body.dataset.saving;
  }
}

function rememberCurrent(): void {
  try {
    if (current) localStorage.setItem(CURRENT_KEY, current.id);
    else localStorage.removeItem(CURRENT_KEY);
  } catch {
    // not remembered: the newest chat opens instead
  }
}

/** Draws the whole conversation. */
function renderConversation(): void {
  const views = (current?.messages ?? []).map((m) => messageView(m, messageActions).root);
  ui.messages.replaceChildren(ui.emptyHint, ...views, ui.error);
  ui.emptyHint.hidden = views.length > 0;
  clearError();
  scrollToEnd(true);
}

async function openConversation(id: string): Promise<void> {
  stopRunning();
  closeChatsOnPhone();
  const found = await store.get(id);
  if (!found) {
    await refreshChatList();
    return;
  }
  current = found;
  rememberCurrent();
  renderConversation();
  closeChatsOnPhone();
  await refreshChatList();
}

function newChat(): void {
  stopRunning();
  current = null;
  rememberCurrent();
  renderConversation();
  ui.status.textContent = "";
  closeChatsOnPhone();
  void refreshChatList();
  ui.prompt.focus();
}

async function renameConversation(id: string, title: string): Promise<void> {
  const conversation = id === current?.id ? current : await store.get(id);
  if (!conversation) return;
  conversation.title = title;
  await save(conversation, false);
  await refreshChatList();
}

async function deleteConversation(id: string): Promise<void> {
  const conversation = await store.get(id);
  if (!conversation || !window.confirm(`Delete the chat "${conversation.title}"?`)) return;
  await store.delete(id);
  if (current?.id === id) newChat();
  else await refreshChatList();
}

async function exportChats(): Promise<void> {
  const conversations = await store.list();
  const blob = new Blob([exportJson(conversations)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `awq-chats-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  ui.chatsNote.textContent = `Exported ${conversations.length} chat${conversations.length === 1 ? "" : "s"}.`;
}

async function importChats(file: File): Promise<void> {
  let imported: Conversation[];
  try {
    imported = parseImport(await file.text());
  } catch (err) {
    ui.chatsNote.textContent = `${file.name}: ${err instanceof Error ? err.message : String(err)}`;
    ui.chatsNote.classList.add("warn");
    return;
  }
  let added = 0;
  for (const conversation of imported) {
    const existing = await store.get(conversation.id);
    if (existing && existing.updatedAt === conversation.updatedAt) continue; // already here
    if (existing) conversation.id = newId(); // a different chat under the same id: keep both
    await store.put(conversation);
    added++;
  }
  ui.chatsNote.classList.remove("warn");
  const skipped = imported.length - added;
  ui.chatsNote.textContent = `Imported ${added} chat${added === 1 ? "" : "s"}${skipped > 0 ? ` (${skipped} already here)` : ""}.`;
  await refreshChatList();
}

// --- messages ----------------------------------------------------------------------------------------

/** Follows the newest text, unless the reader has scrolled up to read something earlier. */
function scrollToEnd(force = false): void {
  const box = ui.messages;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  if (force || nearBottom) box.scrollTop = box.scrollHeight;
}

function setBusy(busy: boolean): void {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  if (!busy && !coarsePointer()) ui.prompt.focus();
}

function stopRunning(): void {
  running?.abort();
  running = null;
}

function appendView(view: MessageView): void {
  ui.emptyHint.hidden = true;
  ui.messages.insertBefore(view.root, ui.error);
  scrollToEnd(true);
}

async function sendPrompt(text: string): Promise<void> {
  if (text.trim() === "") return;
  clearError();
  let params: Record<string, unknown>;
  try {
    params = settings.params();
  } catch (err) {
    ui.prompt.value ||= text;
    showError(describeFailure(err));
    return;
  }
  if (current === null) {
    const now = Date.now();
    current = { id: newId(), title: titleFrom(text), createdAt: now, updatedAt: now, messages: [] };
    rememberCurrent();
  }
  const conversation = current;
  const question: StoredMessage = { id: newId(), role: "user", content: text, createdAt: Date.now() };
  conversation.messages.push(question);
  const view = messageView(question, messageActions);
  appendView(view);
  await save(conversation);
  await refreshChatList();
  const ok = await generate(params, question);
  if (!ok && conversation.messages.at(-1) === question) {
    // Nothing came back: take the question off the conversation and give its text back to the box.
    conversation.messages.pop();
    view.root.remove();
    if (ui.prompt.value === "") ui.prompt.value = text;
    if (conversation.messages.length === 0) {
      await store.delete(conversation.id);
      if (current === conversation) {
        current = null;
        rememberCurrent();
      }
    } else {
      await save(conversation);
    }
    if (current === conversation || current === null)
      ui.emptyHint.hidden = (current?.messages.length ?? 0) > 0;
    await refreshChatList();
  }
}

/**
 * Streams an answer to the conversation as it stands and adds it. Returns false when the request failed
 * before any text came (the error is shown); `question` (a new message) is then taken back by the caller.
 */
async function generate(
  params: Record<string, unknown> | null,
  question: StoredMessage | null,
): Promise<boolean> {
  const conversation = current;
  if (conversation === null) return false;
  if (params === null) {
    try {
      params = settings.params();
    } catch (err) {
      showError(describeFailure(err));
      return false;
    }
  }
  const answer: StoredMessage = { id: newId(), role: "assistant", content: "", createdAt: Date.now() };
  const view = messageView(answer, null);
  view.root.dataset.state = "streaming";
  appendView(view);
  const turns: ChatTurn[] = [
    ...(settings.system ? [{ role: "system" as const, content: settings.system }] : []),
    ...conversation.messages.map((m) => ({ role: m.role, content: m.content })),
  ];
  const controller = new AbortController();
  running = controller;
  setBusy(true);
  ui.status.textContent = "";

  let renderTimer: ReturnType<typeof setTimeout> | null = null;
  let lastSave = Date.now();
  const render = () => {
    renderTimer = null;
    renderBody(view, "assistant", answer.content);
    scrollToEnd();
  };
  const keep = async (stats: MessageStats) => {
    answer.stats = stats;
    if (!conversation.messages.includes(answer)) conversation.messages.push(answer);
    await save(conversation);
  };
  let stats: MessageStats | null = null;
  let failure: unknown = null;
  try {
    const outcome = await streamChat({
      baseUrl: "",
      apiKey: settings.apiKey.value,
      messages: turns,
      params,
      signal: controller.signal,
      onText: (delta) => {
        answer.content += delta;
        renderTimer ??= setTimeout(render, RENDER_INTERVAL_MS);
        if (Date.now() - lastSave > SAVE_INTERVAL_MS && current === conversation) {
          lastSave = Date.now();
          if (!conversation.messages.includes(answer)) conversation.messages.push(answer);
          void save(conversation);
        }
      },
    });
    stats = outcome;
  } catch (err) {
    if (controller.signal.aborted) {
      // Stopped before the answer began.
      stats = { completionTokens: 0, timeToFirstTokenMs: null, tokensPerSecond: null, finishReason: "abort" };
    } else {
      failure = err;
    }
  } finally {
    if (renderTimer !== null) clearTimeout(renderTimer);
    if (running === controller) running = null;
    setBusy(false);
  }
  if (failure !== null && answer.content === "") {
    // Nothing to keep: the answer's place goes, the error says why.
    view.root.remove();
    const index = conversation.messages.indexOf(answer);
    if (index !== -1) conversation.messages.splice(index, 1);
    report(failure, question === null ? () => void exclusive(() => generate(null, null)) : null);
    return false;
  }
  const final: MessageStats = stats
    ? {
        completionTokens: stats.completionTokens,
        timeToFirstTokenMs: stats.timeToFirstTokenMs,
        tokensPerSecond: stats.tokensPerSecond,
        finishReason: stats.finishReason,
      }
    : { completionTokens: 0, timeToFirstTokenMs: null, tokensPerSecond: null, finishReason: null };
  render();
  showStats(view, final);
  addActions(view, answer, messageActions);
  await keep(final);
  // Marked finished once saved: a reload from here on shows the whole answer.
  view.root.dataset.state = failure !== null ? "error" : final.finishReason === "abort" ? "stopped" : "done";
  if (current === conversation) await refreshChatList();
  if (failure !== null) report(failure, null);
  return true;
}

function report(err: unknown, onRetry: (() => void) | null): void {
  showError(describeFailure(err), onRetry);
  if (err instanceof ChatApiError && err.status === 401) settings.askForKey(apiKeyProblem(err));
}

/** Drops message `id` and everything after it from the open chat, saved; false when there is no such message. */
async function truncateFrom(id: string): Promise<boolean> {
  if (current === null) return false;
  const index = current.messages.findIndex((m) => m.id === id);
  if (index === -1) return false;
  current.messages.splice(index);
  renderConversation();
  await save(current);
  return true;
}

/** Answers again from the question before answer `id` (that answer and everything after it go). */
async function regenerate(id: string): Promise<void> {
  if (await truncateFrom(id)) await generate(null, null);
}

/** Replaces user message `id` with `text`, drops everything after it, and sends it again. */
async function editAndResend(id: string, text: string): Promise<void> {
  if (await truncateFrom(id)) await sendPrompt(text);
}

async function removeMessage(id: string): Promise<void> {
  if (current === null) return;
  const index = current.messages.findIndex((m) => m.id === id);
  if (index === -1) return;
  current.messages.splice(index, 1);
  ui.messages.querySelector(`article[data-id="${CSS.escape(id)}"]`)?.remove();
  ui.emptyHint.hidden = current.messages.length > 0;
  await save(current);
  await refreshChatList();
}

// --- the server --------------------------------------------------------------------------------------

/** Shows the served model's name; a 401 shows the key field (`focus`: and puts the cursor there). */
async function loadModelName(focus = true): Promise<void> {
  const headers: Record<string, string> = {};
  if (settings.apiKey.value !== "") headers.authorization = `Bearer ${settings.apiKey.value}`;
  try {
    const response = await fetch("/v1/models", { headers });
    if (response.status === 401) {
      const body = (await response.json().catch(() => ({}))) as {
        error?: { message?: string; code?: string };
      };
      settings.askForKey(
        apiKeyProblem(new ChatApiError(401, body.error?.message ?? "", body.error?.code ?? null)),
        focus,
      );
      return;
    }
    settings.clearKeyHint();
    const models = (await response.json()) as { data?: { id?: string }[] };
    ui.modelName.textContent = models.data?.[0]?.id ?? "";
    ui.status.textContent = "";
  } catch (err) {
    ui.status.textContent = `Could not reach the server at ${location.origin} (${err instanceof Error ? err.message : String(err)})`;
  }
}

// --- panels ------------------------------------------------------------------------------------------

const phone = () => window.matchMedia("(max-width: 760px)").matches;

function setChatsOpen(open: boolean): void {
  ui.chats.classList.toggle("open", open);
  ui.toggleChats.setAttribute("aria-expanded", String(open));
}

/** The chat list is a drawer (over the conversation) below 1000 px: it closes once a chat is picked. */
function closeChatsOnPhone(): void {
  if (window.matchMedia("(max-width: 1000px)").matches) setChatsOpen(false);
}

// --- wiring ------------------------------------------------------------------------------------------

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value;
  if (busy || text.trim() === "") return;
  ui.prompt.value = "";
  void exclusive(() => sendPrompt(text));
});
ui.prompt.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter adds a line; on a touch screen the keyboard's return always adds a line.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !coarsePointer()) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener("click", () => running?.abort());
ui.newChat.addEventListener("click", newChat);
ui.toggleSettings.addEventListener("click", () => {
  settings.setOpen(!settings.open);
  if (phone()) setChatsOpen(false);
});
ui.toggleChats.addEventListener("click", () => {
  setChatsOpen(!ui.chats.classList.contains("open"));
  if (phone()) settings.setOpen(false);
});
ui.errorDismiss.addEventListener("click", clearError);
ui.errorRetry.addEventListener("click", () => {
  const again = retry;
  clearError();
  again?.();
});
ui.exportChats.addEventListener("click", () => void exportChats());
ui.chatSearch.addEventListener("input", () => void refreshChatList());
ui.importChats.addEventListener("click", () => ui.importFile.click());
ui.importFile.addEventListener("change", () => {
  const file = ui.importFile.files?.[0];
  ui.importFile.value = "";
  if (file) void importChats(file);
});
settings.apiKey.addEventListener("change", () => {
  settings.clearKeyHint();
  void loadModelName(false);
});

async function start(): Promise<void> {
  // Open by default beside the conversation; on a phone it would push it down.
  const roomy = !phone();
  let open = roomy;
  try {
    const saved = localStorage.getItem(SETTINGS_OPEN_KEY);
    if (saved !== null && roomy) open = saved === "true";
  } catch {
    // defaults
  }
  settings.setOpen(open);
  void loadModelName();
  store = await openConversationStore();
  if (!store.persistent)
    ui.chatsNote.textContent = "This browser keeps no chats (no IndexedDB): they go with the page.";
  let lastId: string | null = null;
  try {
    lastId = localStorage.getItem(CURRENT_KEY);
  } catch {
    // none
  }
  const found = lastId === null ? undefined : await store.get(lastId);
  current = found ?? null;
  renderConversation();
  await refreshChatList();
  document.body.dataset.ready = "true";
}

void start();

/**
 * The chat page's controller (runs in the browser as /assets/app.js): conversation state, the settings
 * panel, sending and stopping requests, and per-answer timing. Model text reaches the DOM only through
 * renderMarkdown (DOM nodes, never HTML); user text only through textContent.
 */
import { ChatApiError, type ChatOutcome, type ChatTurn, streamChat } from "./chat-client.js";
import { renderMarkdown } from "./markdown.js";

const SETTINGS_KEY = "awq-chat-settings";
/** How often a streaming answer is re-rendered: often enough to look live, rarely enough to stay cheap. */
const RENDER_INTERVAL_MS = 50;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the chat page has no #${id}`);
  return found as T;
}

const ui = {
  modelName: element<HTMLSpanElement>("model-name"),
  newChat: element<HTMLButtonElement>("new-chat"),
  toggleSettings: element<HTMLButtonElement>("toggle-settings"),
  settings: element<HTMLElement>("settings"),
  systemPrompt: element<HTMLTextAreaElement>("system-prompt"),
  temperature: element<HTMLInputElement>("temperature"),
  temperatureValue: element<HTMLOutputElement>("temperature-value"),
  topP: element<HTMLInputElement>("top-p"),
  topPValue: element<HTMLOutputElement>("top-p-value"),
  maxTokens: element<HTMLInputElement>("max-tokens"),
  jsonSchema: element<HTMLTextAreaElement>("json-schema"),
  apiKeyRow: element<HTMLDivElement>("api-key-row"),
  apiKey: element<HTMLInputElement>("api-key"),
  apiKeyHint: element<HTMLParagraphElement>("api-key-hint"),
  messages: element<HTMLDivElement>("messages"),
  emptyHint: element<HTMLParagraphElement>("empty-hint"),
  composer: element<HTMLFormElement>("composer"),
  prompt: element<HTMLTextAreaElement>("prompt"),
  send: element<HTMLButtonElement>("send"),
  stop: element<HTMLButtonElement>("stop"),
  status: element<HTMLParagraphElement>("status"),
};

/** The conversation as sent to the server (the system prompt is added per request from the panel). */
const history: ChatTurn[] = [];
let running: AbortController | null = null;
/** Bumped by "New chat", so an answer still finishing cannot write into the next conversation. */
let conversation = 0;

interface StoredSettings {
  system?: string;
  temperature?: string;
  topP?: string;
  maxTokens?: string;
  apiKey?: string;
}

function restoreSettings(): void {
  let stored: StoredSettings = {};
  try {
    stored = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}") as StoredSettings;
  } catch {
    // private mode or a corrupt entry: start from the defaults
  }
  if (typeof stored.system === "string") ui.systemPrompt.value = stored.system;
  if (typeof stored.temperature === "string") ui.temperature.value = stored.temperature;
  if (typeof stored.topP === "string") ui.topP.value = stored.topP;
  if (typeof stored.maxTokens === "string") ui.maxTokens.value = stored.maxTokens;
  if (typeof stored.apiKey === "string" && stored.apiKey !== "") {
    ui.apiKey.value = stored.apiKey;
    ui.apiKeyRow.hidden = false;
  }
}

function saveSettings(): void {
  const settings: StoredSettings = {
    system: ui.systemPrompt.value,
    temperature: ui.temperature.value,
    topP: ui.topP.value,
    maxTokens: ui.maxTokens.value,
    apiKey: ui.apiKey.value,
  };
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // storage unavailable: settings last for this page only
  }
}

function showSliderValues(): void {
  ui.temperatureValue.textContent = Number(ui.temperature.value).toFixed(2);
  ui.topPValue.textContent = Number(ui.topP.value).toFixed(2);
}

function samplingParams(): Record<string, unknown> {
  const params: Record<string, unknown> = {
    temperature: Number(ui.temperature.value),
    top_p: Number(ui.topP.value),
  };
  const maxTokens = Number.parseInt(ui.maxTokens.value, 10);
  if (Number.isInteger(maxTokens) && maxTokens > 0) params.max_tokens = maxTokens;
  // A pasted schema constrains the reply (response_format json_schema); the server names what is wrong with it.
  const schemaText = ui.jsonSchema.value.trim();
  if (schemaText !== "") {
    let schema: unknown;
    try {
      schema = JSON.parse(schemaText);
    } catch (err) {
      throw new Error(`The JSON schema is not valid JSON: ${(err as Error).message}`);
    }
    params.response_format = { type: "json_schema", json_schema: { name: "schema", schema } };
  }
  return params;
}

/** The server answered 401: show the key field and say why. */
function askForKey(message: string): void {
  ui.apiKeyRow.hidden = false;
  ui.apiKeyHint.textContent = `${message}. Enter the server's API key.`;
  ui.settings.classList.add("open");
  ui.toggleSettings.setAttribute("aria-expanded", "true");
  ui.apiKey.focus();
}

async function loadModelName(): Promise<void> {
  const headers: Record<string, string> = {};
  if (ui.apiKey.value !== "") headers.authorization = `Bearer ${ui.apiKey.value}`;
  try {
    const response = await fetch("/v1/models", { headers });
    if (response.status === 401) {
      askForKey("This server needs an API key");
      return;
    }
    const models = (await response.json()) as { data?: { id?: string }[] };
    ui.modelName.textContent = models.data?.[0]?.id ?? "";
  } catch (err) {
    ui.status.textContent = `Could not reach the server: ${String(err)}`;
  }
}

interface MessageView {
  root: HTMLElement;
  body: HTMLDivElement;
  stats: HTMLDivElement;
}

function addMessage(role: "user" | "assistant", text: string): MessageView {
  ui.emptyHint.hidden = true;
  const root = document.createElement("article");
  root.className = `message ${role}`;
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  const stats = document.createElement("div");
  stats.className = "stats";
  root.append(body, stats);
  ui.messages.append(root);
  scrollToEnd(true);
  return { root, body, stats };
}

/** Follows the newest text, unless the reader has scrolled up to read something earlier. */
function scrollToEnd(force = false): void {
  const box = ui.messages;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  if (force || nearBottom) box.scrollTop = box.scrollHeight;
}

function setBusy(busy: boolean): void {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  if (!busy) ui.prompt.focus();
}

function showStats(view: MessageView, outcome: ChatOutcome): void {
  const parts: string[] = [];
  if (outcome.timeToFirstTokenMs !== null) parts.push(`TTFT ${Math.round(outcome.timeToFirstTokenMs)} ms`);
  if (outcome.tokensPerSecond !== null) parts.push(`${outcome.tokensPerSecond.toFixed(1)} tokens/s`);
  parts.push(`${outcome.completionTokens} tokens`);
  if (outcome.finishReason === "abort") parts.push("stopped");
  else if (outcome.finishReason === "length") parts.push("max tokens reached");
  else if (outcome.finishReason === null) parts.push("the connection ended early");
  view.stats.textContent = parts.join(" · ");
  view.root.dataset.ttftMs = String(outcome.timeToFirstTokenMs ?? "");
  view.root.dataset.tokensPerSecond = String(outcome.tokensPerSecond ?? "");
  view.root.dataset.completionTokens = String(outcome.completionTokens);
  view.root.dataset.finishReason = outcome.finishReason ?? "";
}

async function send(text: string): Promise<void> {
  if (running !== null || text.trim() === "") return;
  const userTurn: ChatTurn = { role: "user", content: text };
  const question = addMessage("user", text);
  const answer = addMessage("assistant", "");
  answer.root.dataset.state = "streaming";
  const system = ui.systemPrompt.value.trim();
  const messages: ChatTurn[] = [
    ...(system ? [{ role: "system" as const, content: system }] : []),
    ...history,
    userTurn,
  ];
  const controller = new AbortController();
  const thisConversation = conversation;
  running = controller;
  setBusy(true);
  ui.status.textContent = "";

  let answerText = "";
  let renderTimer: ReturnType<typeof setTimeout> | null = null;
  const render = () => {
    renderTimer = null;
    answer.body.replaceChildren(renderMarkdown(document, answerText));
    scrollToEnd();
  };
  try {
    const outcome = await streamChat({
      baseUrl: "",
      apiKey: ui.apiKey.value,
      messages,
      params: samplingParams(),
      signal: controller.signal,
      onText: (delta) => {
        answerText += delta;
        renderTimer ??= setTimeout(render, RENDER_INTERVAL_MS);
      },
    });
    if (thisConversation === conversation)
      history.push(userTurn, { role: "assistant", content: outcome.text });
    showStats(answer, outcome);
    answer.root.dataset.state = outcome.finishReason === "abort" ? "stopped" : "done";
  } catch (err) {
    if (controller.signal.aborted) {
      // Stopped before the answer began: keep what the user saw.
      if (thisConversation === conversation)
        history.push(userTurn, { role: "assistant", content: answerText });
      answer.stats.textContent = "stopped";
      answer.root.dataset.finishReason = "abort";
      answer.root.dataset.state = "stopped";
    } else if (err instanceof ChatApiError && err.status === 401) {
      question.root.remove();
      answer.root.remove();
      if (ui.prompt.value === "") ui.prompt.value = text;
      askForKey(err.message);
    } else {
      // Not added to the history: the user can edit and resend.
      answer.root.classList.add("error");
      answer.root.dataset.state = "error";
      answer.body.textContent = err instanceof Error ? err.message : String(err);
    }
  } finally {
    if (renderTimer !== null) clearTimeout(renderTimer);
    if (answer.root.dataset.state !== "error") render();
    running = null;
    setBusy(false);
  }
}

function newChat(): void {
  conversation++;
  running?.abort();
  history.length = 0;
  ui.messages.replaceChildren(ui.emptyHint);
  ui.emptyHint.hidden = false;
  ui.status.textContent = "";
  ui.prompt.focus();
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value;
  if (running !== null || text.trim() === "") return;
  ui.prompt.value = "";
  void send(text);
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener("click", () => running?.abort());
ui.newChat.addEventListener("click", newChat);
ui.toggleSettings.addEventListener("click", () => {
  const open = ui.settings.classList.toggle("open");
  ui.toggleSettings.setAttribute("aria-expanded", String(open));
});
for (const input of [ui.systemPrompt, ui.temperature, ui.topP, ui.maxTokens, ui.apiKey]) {
  input.addEventListener("input", () => {
    showSliderValues();
    saveSettings();
  });
}
ui.apiKey.addEventListener("change", () => {
  ui.apiKeyHint.textContent = "";
  void loadModelName();
});

restoreSettings();
showSliderValues();
void loadModelName();

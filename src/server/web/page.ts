/**
 * The chat page's HTML shell. Static: no model text or server value is ever interpolated here; app.ts
 * fills it in with textContent. Everything it loads comes from this server (see routes.ts: /assets/*),
 * including KaTeX, highlight.js and idb, which the import map names for the page's modules.
 */
import { SAMPLING_FIELDS, type SettingField } from "./settings-fields.js";

/** The browser modules, compiled by tsc next to this file (routes.ts serves only these names). */
export const PAGE_MODULES = [
  "app.js",
  "chat-client.js",
  "chat-list.js",
  "clipboard.js",
  "conversation-io.js",
  "conversation-store.js",
  "markdown.js",
  "markdown-parse.js",
  "message-view.js",
  "rich-text.js",
  "settings-fields.js",
  "settings-panel.js",
  "sse-parse.js",
] as const;

/** Every script the page runs, fetched at once instead of one import level after another. */
const PRELOADS = [...PAGE_MODULES, "idb.js", "katex.mjs", "highlight.min.js"]
  .map((name) => `<link rel="modulepreload" href="/assets/${name}">`)
  .join("\n");

/** Bare module names in the page's modules -> the URLs routes.ts serves them at. */
export const IMPORT_MAP_JSON = JSON.stringify({
  imports: {
    katex: "/assets/katex.mjs",
    "@highlightjs/cdn-assets/es/highlight.min.js": "/assets/highlight.min.js",
    idb: "/assets/idb.js",
  },
});

const ICONS = {
  menu: '<path d="M3 6h18M3 12h18M3 18h18"/>',
  plus: '<path d="M12 5v14M5 12h14"/>',
  sliders:
    '<path d="M4 6h10M18 6h2M4 12h4M12 12h8M4 18h12M20 18h0"/><circle cx="16" cy="6" r="2"/><circle cx="10" cy="12" r="2"/><circle cx="18" cy="18" r="2"/>',
};

function icon(name: keyof typeof ICONS): string {
  return `<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round">${ICONS[name]}</svg>`;
}

/** Values here come from SAMPLING_FIELDS (our own constants), escaped all the same. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fieldHtml(field: SettingField): string {
  const id = escapeHtml(field.id);
  const hint = `<span class="hint">${escapeHtml(field.hint)}</span>`;
  if (field.kind === "boolean") {
    return `<label class="check" for="${id}"><input id="${id}" type="checkbox"> ${escapeHtml(field.label)} ${hint}</label>`;
  }
  const label = `<label for="${id}">${escapeHtml(field.label)} ${hint}</label>`;
  if (field.kind === "stops" || field.kind === "json-object" || field.kind === "json-schema") {
    const rows = field.kind === "json-schema" ? 4 : 2;
    const placeholder = escapeHtml(field.placeholder ?? "");
    return `${label}<textarea id="${id}" rows="${rows}" spellcheck="false" placeholder="${placeholder}"></textarea>`;
  }
  const attrs = [
    field.min === undefined ? "" : ` min="${field.min}"`,
    field.max === undefined ? "" : ` max="${field.max}"`,
    field.step === undefined ? "" : ` step="${escapeHtml(field.step)}"`,
  ].join("");
  const mode = field.kind === "integer" ? "numeric" : "decimal";
  return `${label}<input id="${id}" type="number"${attrs} inputmode="${mode}" placeholder="server default">`;
}

export const CHAT_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, interactive-widget=resizes-content">
<title>awq-ts chat</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
<link rel="stylesheet" href="/assets/katex.min.css">
<link rel="stylesheet" href="/assets/highlight.css">
<script type="importmap">${IMPORT_MAP_JSON}</script>
${PRELOADS}
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<header class="topbar">
  <button id="toggle-chats" class="icon-button chats-toggle" type="button" aria-controls="chats" aria-expanded="false" title="Chats">${icon("menu")}<span class="label">Chats</span></button>
  <h1>awq-ts</h1>
  <span id="model-name" class="model-name" title="served model"></span>
  <span class="spacer"></span>
  <button id="new-chat" class="icon-button" type="button" title="New chat">${icon("plus")}<span class="label">New chat</span></button>
  <button id="toggle-settings" class="icon-button" type="button" aria-controls="settings" aria-expanded="false" title="Settings">${icon("sliders")}<span class="label">Settings</span></button>
</header>
<div class="layout">
  <nav id="chats" class="chats" aria-label="Chats">
    <div class="chats-head">
      <button id="export-chats" type="button" title="Save every chat as a JSON file">Export</button>
      <button id="import-chats" type="button" title="Load chats from an exported JSON file">Import</button>
      <input id="import-file" type="file" accept=".json,application/json" hidden>
    </div>
    <input id="chat-search" class="chat-search" type="search" placeholder="Search chats" aria-label="Search chats (titles and messages)" autocomplete="off">
    <ul id="chat-list" class="chat-list"></ul>
    <p id="chats-note" class="note"></p>
  </nav>
  <aside id="settings" class="settings" aria-label="Settings">
    <div class="settings-head">
      <h2>Settings</h2>
      <button id="reset-settings" type="button" title="Clear every sampling field (server defaults)">Reset</button>
      <button id="close-settings" type="button">Close</button>
    </div>
    <div id="api-key-row" class="api-key-row" hidden>
      <label for="api-key">API key</label>
      <input id="api-key" type="password" autocomplete="off" spellcheck="false" placeholder="sent as a bearer token">
      <p id="api-key-hint" class="hint warn"></p>
    </div>
    <label for="system-prompt">System prompt</label>
    <textarea id="system-prompt" rows="3" placeholder="You are a helpful assistant."></textarea>
    <p class="note">Empty fields are not sent: the server's defaults apply.</p>
    ${SAMPLING_FIELDS.map(fieldHtml).join("\n    ")}
  </aside>
  <main class="chat">
    <div id="messages" class="messages" aria-live="polite">
      <p id="empty-hint" class="empty-hint">Ask something to start. Enter sends, Shift+Enter adds a line.</p>
      <div id="error" class="error-box" role="alert" hidden>
        <p id="error-text"></p>
        <button id="error-retry" type="button" hidden>Retry</button>
        <button id="error-dismiss" type="button">Dismiss</button>
      </div>
    </div>
    <form id="composer" class="composer">
      <textarea id="prompt" rows="2" placeholder="Send a message" aria-label="Message" enterkeyhint="enter"></textarea>
      <button id="send" type="submit">Send</button>
      <button id="stop" type="button" class="stop" hidden>Stop</button>
    </form>
    <p id="status" class="status" role="status"></p>
  </main>
</div>
</body>
</html>
`;

/** The chat page's stylesheet: light and dark, a side panel on wide screens, one column at phone width. */
export const CHAT_PAGE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f7f7f8; --panel: #ffffff; --text: #1d1d1f; --muted: #6b6b76; --border: #d9d9e0;
  --accent: #2f6fde; --accent-text: #ffffff; --user: #e7effd; --code-bg: #f0f0f3; --danger: #c62828;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  font-size: 16px;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #16161a; --panel: #1f1f24; --text: #e8e8ec; --muted: #9a9aa6; --border: #34343c;
    --accent: #5b8ff0; --user: #243150; --code-bg: #2a2a31; --danger: #ef6b6b;
  }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { background: var(--bg); color: var(--text); display: flex; flex-direction: column; }
button, input, textarea { font: inherit; color: inherit; }
button {
  border: 1px solid var(--border); background: var(--panel); border-radius: 8px; padding: 0.45rem 0.9rem;
  cursor: pointer;
}
button:hover { border-color: var(--accent); }
button:disabled { opacity: 0.5; cursor: default; }
.topbar {
  display: flex; align-items: center; gap: 0.6rem; padding: 0.5rem 1rem; background: var(--panel);
  border-bottom: 1px solid var(--border);
}
.topbar h1 { font-size: 1.1rem; margin: 0; }
.model-name { color: var(--muted); font-size: 0.9rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.spacer { flex: 1; }
.layout { flex: 1; display: flex; min-height: 0; }
.settings {
  width: 280px; flex: none; padding: 1rem; border-right: 1px solid var(--border); background: var(--panel);
  display: flex; flex-direction: column; gap: 0.35rem; overflow-y: auto;
}
.settings label { font-size: 0.85rem; color: var(--muted); margin-top: 0.6rem; }
.settings textarea, .settings input[type="number"], .settings input[type="password"] {
  width: 100%; padding: 0.45rem; border: 1px solid var(--border); border-radius: 6px; background: var(--bg);
}
.settings input[type="range"] { width: 100%; }
.api-key-row { display: flex; flex-direction: column; gap: 0.35rem; }
.api-key-row[hidden] { display: none; }
.hint { margin: 0; font-size: 0.8rem; color: var(--danger); }
.chat { flex: 1; display: flex; flex-direction: column; min-width: 0; }
.messages { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: 0.9rem; }
.empty-hint { color: var(--muted); text-align: center; margin-top: 3rem; }
.message {
  max-width: min(52rem, 100%); padding: 0.6rem 0.9rem; border-radius: 12px; background: var(--panel);
  border: 1px solid var(--border); overflow-wrap: anywhere;
}
.message.user { align-self: flex-end; background: var(--user); white-space: pre-wrap; }
.message.assistant { align-self: flex-start; }
.message.error .body { color: var(--danger); white-space: pre-wrap; }
.message .body > :first-child { margin-top: 0; }
.message .body > :last-child { margin-bottom: 0; }
.message[data-state="streaming"] .body::after { content: "\\25CD"; color: var(--muted); margin-left: 0.2rem; }
.message .stats { margin-top: 0.4rem; font-size: 0.78rem; color: var(--muted); }
.message .stats:empty { display: none; }
.message pre {
  background: var(--code-bg); padding: 0.6rem 0.75rem; border-radius: 8px; overflow-x: auto;
  white-space: pre; overflow-wrap: normal;
}
.message code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
.message :not(pre) > code { background: var(--code-bg); padding: 0.05rem 0.3rem; border-radius: 4px; }
.message blockquote { margin: 0.5rem 0; padding-left: 0.8rem; border-left: 3px solid var(--border); color: var(--muted); }
.message a { color: var(--accent); }
.message ul, .message ol { padding-left: 1.4rem; }
.composer { display: flex; gap: 0.5rem; padding: 0.75rem 1rem; border-top: 1px solid var(--border); background: var(--panel); }
.composer textarea {
  flex: 1; resize: vertical; min-height: 2.6rem; max-height: 40vh; padding: 0.5rem 0.6rem;
  border: 1px solid var(--border); border-radius: 8px; background: var(--bg);
}
.composer button[type="submit"] { background: var(--accent); color: var(--accent-text); border-color: var(--accent); }
.composer .stop { border-color: var(--danger); color: var(--danger); }
.composer button[hidden] { display: none; }
.status { margin: 0; padding: 0 1rem 0.5rem; font-size: 0.8rem; color: var(--muted); min-height: 1.2rem; }
@media (max-width: 760px) {
  .layout { flex-direction: column; }
  .settings { width: auto; border-right: none; border-bottom: 1px solid var(--border); display: none; max-height: 50vh; }
  .settings.open { display: flex; }
  .topbar { padding: 0.5rem 0.6rem; gap: 0.4rem; }
  .topbar button { padding: 0.4rem 0.6rem; }
  .messages { padding: 0.6rem; }
  .composer { padding: 0.5rem 0.6rem; }
}
@media (min-width: 761px) {
  #toggle-settings { display: none; }
}
`;

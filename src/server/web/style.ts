/**
 * The chat page's stylesheet: light and dark; on wide screens the chat list on the left and the settings on
 * the right, the chat list a drawer below 1000 px; at phone width one column under a one-line header, the chat list as a drawer and the settings
 * above the conversation, so the message box stays on screen with them open.
 */
export const CHAT_PAGE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f7f7f8; --panel: #ffffff; --text: #1d1d1f; --muted: #6b6b76; --border: #d9d9e0;
  --accent: #2f6fde; --accent-text: #ffffff; --user: #e7effd; --code-bg: #f3f3f6; --danger: #c62828;
  --danger-bg: #fdecec; --hover: #eef0f5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  font-size: 16px;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #16161a; --panel: #1f1f24; --text: #e8e8ec; --muted: #9a9aa6; --border: #34343c;
    --accent: #5b8ff0; --user: #243150; --code-bg: #0d1117; --danger: #ef6b6b; --danger-bg: #3a1f22;
    --hover: #2a2a31;
  }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { height: 100dvh; background: var(--bg); color: var(--text); display: flex; flex-direction: column; overflow: hidden; }
button, input, textarea { font: inherit; color: inherit; }
button {
  border: 1px solid var(--border); background: var(--panel); border-radius: 8px; padding: 0.4rem 0.8rem;
  cursor: pointer;
}
button:hover { border-color: var(--accent); }
button:disabled { opacity: 0.5; cursor: default; }
button.small { font-size: 0.78rem; padding: 0.15rem 0.5rem; border-radius: 6px; color: var(--muted); }
button.small:hover { color: var(--text); }
button.small.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); }
.offscreen { position: fixed; left: -9999px; top: 0; }
.icon { width: 1.15rem; height: 1.15rem; flex: none; }
.icon-button { display: inline-flex; align-items: center; gap: 0.4rem; white-space: nowrap; }

.topbar {
  display: flex; align-items: center; gap: 0.6rem; padding: 0.45rem 1rem; background: var(--panel);
  border-bottom: 1px solid var(--border); flex: none; min-width: 0;
}
.topbar h1 { font-size: 1.1rem; margin: 0; white-space: nowrap; }
.model-name { color: var(--muted); font-size: 0.9rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
.spacer { flex: 1; }
.chats-toggle { display: none; }

.layout { flex: 1; display: flex; min-height: 0; position: relative; }
.chats {
  width: 260px; flex: none; border-right: 1px solid var(--border); background: var(--panel);
  display: flex; flex-direction: column; min-height: 0;
}
.chats-head { display: flex; gap: 0.4rem; padding: 0.6rem; border-bottom: 1px solid var(--border); }
.chats-head button { flex: 1; font-size: 0.85rem; padding: 0.3rem 0.5rem; }
.chat-search {
  margin: 0.5rem 0.6rem 0.1rem; padding: 0.35rem 0.5rem; border: 1px solid var(--border); border-radius: 6px;
  background: var(--bg); font-size: 0.88rem;
}
.chat-list { list-style: none; margin: 0; padding: 0.3rem; overflow-y: auto; flex: 1; }
.chat-item { display: flex; align-items: center; gap: 0.2rem; border-radius: 8px; padding: 0.1rem 0.2rem; }
.chat-item:hover, .chat-item[aria-current="true"] { background: var(--hover); }
.chat-item[aria-current="true"] .chat-title { font-weight: 600; }
.chat-open {
  flex: 1; min-width: 0; text-align: left; border: none; background: none; padding: 0.35rem 0.3rem;
  display: flex; flex-direction: column; gap: 0.1rem;
}
.chat-title { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-size: 0.9rem; }
.chat-when { font-size: 0.72rem; color: var(--muted); }
.chat-item button.small { border-color: transparent; background: none; padding: 0.3rem; display: inline-flex; }
.chat-item button.small .icon { width: 1rem; height: 1rem; }
.chat-item:not(:hover):not(:focus-within):not([aria-current="true"]) button.small { opacity: 0; }
.chat-rename-field { flex: 1; min-width: 0; padding: 0.3rem; border: 1px solid var(--accent); border-radius: 6px; background: var(--bg); }
.note { margin: 0; padding: 0.4rem 0.7rem; font-size: 0.8rem; color: var(--muted); }
.note:empty { display: none; }
.note.warn, .hint.warn { color: var(--danger); }

.settings {
  order: 3; width: 300px; flex: none; padding: 0.8rem 1rem; border-left: 1px solid var(--border);
  background: var(--panel); display: none; flex-direction: column; gap: 0.3rem; overflow-y: auto; min-height: 0;
}
.settings.open { display: flex; }
.settings > * { flex: none; }
.settings-head { display: flex; align-items: center; gap: 0.4rem; }
.settings-head h2 { font-size: 1rem; margin: 0; flex: 1; }
.settings-head button { font-size: 0.8rem; padding: 0.2rem 0.6rem; }
.settings label { font-size: 0.85rem; color: var(--muted); margin-top: 0.5rem; }
.settings label .hint { font-size: 0.75rem; opacity: 0.85; }
.settings label.check { display: flex; align-items: center; gap: 0.4rem; flex-wrap: wrap; }
.settings .note { padding: 0.3rem 0 0; }
.settings textarea, .settings input[type="number"], .settings input[type="password"] {
  width: 100%; padding: 0.4rem; border: 1px solid var(--border); border-radius: 6px; background: var(--bg);
}
.settings [aria-invalid="true"] { border-color: var(--danger); outline: 1px solid var(--danger); }
.api-key-row { display: flex; flex-direction: column; gap: 0.3rem; }
.api-key-row[hidden] { display: none; }
.hint { margin: 0; font-size: 0.8rem; color: var(--muted); }

.chat { order: 2; flex: 1; display: flex; flex-direction: column; min-width: 0; min-height: 0; }
.messages { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: 0.9rem; min-height: 0; }
.empty-hint { color: var(--muted); text-align: center; margin-top: 3rem; }
.message {
  max-width: min(52rem, 100%); padding: 0.6rem 0.9rem; border-radius: 12px; background: var(--panel);
  border: 1px solid var(--border); overflow-wrap: anywhere; min-width: 0;
}
.message.user { align-self: flex-end; background: var(--user); }
.message.user .body { white-space: pre-wrap; }
.message.assistant { align-self: flex-start; }
.message .body > :first-child { margin-top: 0; }
.message .body > :last-child { margin-bottom: 0; }
.message[data-state="streaming"] .body::after { content: "\\25CD"; color: var(--muted); margin-left: 0.2rem; }
.message .stats { margin-top: 0.4rem; font-size: 0.78rem; color: var(--muted); }
.message .stats:empty { display: none; }
.message .actions { display: flex; gap: 0.3rem; margin-top: 0.35rem; flex-wrap: wrap; }
.message .actions:empty { display: none; }
.message .actions button.small { border-color: transparent; background: none; padding: 0.1rem 0.35rem; }
.message .actions button.small:hover { border-color: var(--border); }
.edit-field { width: min(40rem, 80vw); max-width: 100%; padding: 0.45rem; border: 1px solid var(--accent); border-radius: 8px; background: var(--bg); resize: vertical; }
.edit-actions { display: flex; gap: 0.4rem; justify-content: flex-end; margin-top: 0.3rem; }
.code-block { margin: 0.6rem 0; border: 1px solid var(--border); border-radius: 8px; overflow: hidden; background: var(--code-bg); }
.code-head {
  display: flex; align-items: center; justify-content: space-between; padding: 0.15rem 0.3rem 0.15rem 0.7rem;
  font-size: 0.75rem; color: var(--muted); border-bottom: 1px solid var(--border);
}
.code-head button.small { background: none; }
.message pre {
  margin: 0; background: var(--code-bg); padding: 0.6rem 0.75rem; overflow-x: auto;
  white-space: pre; overflow-wrap: normal;
}
.message pre code.hljs { padding: 0; background: none; }
.message code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }
.message :not(pre) > code { background: var(--code-bg); padding: 0.05rem 0.3rem; border-radius: 4px; }
.message blockquote { margin: 0.5rem 0; padding-left: 0.8rem; border-left: 3px solid var(--border); color: var(--muted); }
.message a { color: var(--accent); }
.message ul, .message ol { padding-left: 1.4rem; }
.table-box { overflow-x: auto; margin: 0.6rem 0; }
.message table { border-collapse: collapse; font-size: 0.92rem; }
.message th, .message td { border: 1px solid var(--border); padding: 0.3rem 0.6rem; vertical-align: top; }
.message th { background: var(--code-bg); }
.math-display { display: block; overflow-x: auto; overflow-y: hidden; padding: 0.2rem 0; }
.math-error { font-family: ui-monospace, monospace; color: var(--danger); }
.error-box {
  align-self: stretch; display: flex; align-items: center; gap: 0.6rem; flex-wrap: wrap; padding: 0.6rem 0.8rem;
  border: 1px solid var(--danger); border-radius: 10px; background: var(--danger-bg); color: var(--danger);
}
.error-box[hidden] { display: none; }
.error-box p { margin: 0; flex: 1; min-width: 12rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.error-box button { font-size: 0.85rem; padding: 0.25rem 0.7rem; }
.error-box button[hidden] { display: none; }

.composer { display: flex; gap: 0.5rem; padding: 0.7rem 1rem; border-top: 1px solid var(--border); background: var(--panel); flex: none; }
.composer textarea {
  flex: 1; resize: none; min-height: 2.6rem; max-height: 30vh; padding: 0.5rem 0.6rem; min-width: 0;
  border: 1px solid var(--border); border-radius: 8px; background: var(--bg); field-sizing: content;
}
.composer button[type="submit"] { background: var(--accent); color: var(--accent-text); border-color: var(--accent); }
.composer .stop { border-color: var(--danger); color: var(--danger); }
.composer button[hidden] { display: none; }
.status { margin: 0; padding: 0 1rem 0.4rem; font-size: 0.8rem; color: var(--muted); flex: none; background: var(--panel); }
.status:empty { display: none; }

@media (max-width: 1000px) {
  .chats-toggle { display: inline-flex; }
  .chats {
    display: none; position: absolute; z-index: 10; top: 0; bottom: 0; left: 0; width: min(20rem, 86vw);
    box-shadow: 0 0 24px rgba(0, 0, 0, 0.25);
  }
  .chats.open { display: flex; }
  .chat-item button.small { opacity: 1 !important; }
}
@media (max-width: 760px) {
  .topbar { padding: 0.4rem 0.5rem; gap: 0.35rem; }
  .topbar h1 { font-size: 1rem; }
  .topbar .label { display: none; }
  .icon-button { padding: 0.4rem 0.5rem; }
  .layout { flex-direction: column; }
  .settings {
    order: 1; width: auto; border-left: none; border-bottom: 1px solid var(--border); max-height: 45%;
    flex: none; padding: 0.6rem 0.8rem;
  }
  .chat { order: 2; flex: 1; }
  .messages { padding: 0.6rem; }
  .message { max-width: 100%; }
  .composer { padding: 0.5rem 0.6rem; }
}
`;

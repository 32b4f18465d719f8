/**
 * The chat page's HTML shell. Static: no model text or server value is ever interpolated here; app.ts
 * fills it in with textContent. Everything it loads comes from this server (see routes.ts: /assets/*).
 */
export const CHAT_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>awq-ts chat</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<header class="topbar">
  <h1>awq-ts</h1>
  <span id="model-name" class="model-name" title="served model"></span>
  <span class="spacer"></span>
  <button id="new-chat" type="button">New chat</button>
  <button id="toggle-settings" type="button" aria-controls="settings" aria-expanded="false">Settings</button>
</header>
<div class="layout">
  <aside id="settings" class="settings" aria-label="Settings">
    <label for="system-prompt">System prompt</label>
    <textarea id="system-prompt" rows="4" placeholder="You are a helpful assistant."></textarea>
    <label for="temperature">Temperature <output id="temperature-value" for="temperature"></output></label>
    <input id="temperature" type="range" min="0" max="2" step="0.05" value="0.7">
    <label for="top-p">Top-p <output id="top-p-value" for="top-p"></output></label>
    <input id="top-p" type="range" min="0.05" max="1" step="0.05" value="0.95">
    <label for="max-tokens">Max tokens</label>
    <input id="max-tokens" type="number" min="1" step="1" value="512" inputmode="numeric">
    <label for="json-schema">JSON schema <span class="hint">(optional: the reply is JSON valid under it)</span></label>
    <textarea id="json-schema" rows="4" spellcheck="false" placeholder='{"type": "object", "properties": {...}}'></textarea>
    <div id="api-key-row" class="api-key-row" hidden>
      <label for="api-key">API key</label>
      <input id="api-key" type="password" autocomplete="off" spellcheck="false" placeholder="sent as a bearer token">
      <p id="api-key-hint" class="hint"></p>
    </div>
  </aside>
  <main class="chat">
    <div id="messages" class="messages" aria-live="polite">
      <p id="empty-hint" class="empty-hint">Ask something to start. Enter sends, Shift+Enter adds a line.</p>
    </div>
    <form id="composer" class="composer">
      <textarea id="prompt" rows="2" placeholder="Send a message" aria-label="Message"></textarea>
      <button id="send" type="submit">Send</button>
      <button id="stop" type="button" class="stop" hidden>Stop</button>
    </form>
    <p id="status" class="status" role="status"></p>
  </main>
</div>
</body>
</html>
`;

/**
 * One message on the page: its text (user text as plain text, answers as Markdown with code colouring and
 * TeX), the answer's timing line, and its actions: Copy, Edit (a user message: change it and send again),
 * Regenerate (an answer) and Delete.
 */
import { copyWithFeedback } from "./clipboard.js";
import type { MessageStats, StoredMessage } from "./conversation-io.js";
import { renderMarkdown } from "./markdown.js";
import { richTextHooks } from "./rich-text.js";

export interface MessageActions {
  edit(id: string, text: string): void;
  regenerate(id: string): void;
  remove(id: string): void;
}

export interface MessageView {
  root: HTMLElement;
  body: HTMLDivElement;
  stats: HTMLDivElement;
  actions: HTMLDivElement;
}

export function renderBody(view: MessageView, role: StoredMessage["role"], text: string): void {
  if (role === "user") view.body.textContent = text;
  else view.body.replaceChildren(renderMarkdown(document, text, richTextHooks));
}

/** The element for `message`; `actions` null for an answer still streaming (no buttons yet). */
export function messageView(message: StoredMessage, actions: MessageActions | null): MessageView {
  const root = document.createElement("article");
  root.className = `message ${message.role}`;
  root.dataset.id = message.id;
  const body = document.createElement("div");
  body.className = "body";
  const stats = document.createElement("div");
  stats.className = "stats";
  const bar = document.createElement("div");
  bar.className = "actions";
  root.append(body, stats, bar);
  const view = { root, body, stats, actions: bar };
  renderBody(view, message.role, message.content);
  if (message.stats) showStats(view, message.stats);
  if (actions) {
    // A saved message is finished; data-state "streaming" is set by the caller for a new answer.
    root.dataset.state = message.stats?.finishReason === "abort" ? "stopped" : "done";
    addActions(view, message, actions);
  }
  return view;
}

export function addActions(view: MessageView, message: StoredMessage, actions: MessageActions): void {
  const button = (
    text: string,
    title: string,
    className: string,
    onClick: (b: HTMLButtonElement) => void,
  ) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `small ${className}`;
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", () => onClick(b));
    return b;
  };
  const buttons = [
    button(
      "Copy",
      "Copy the message's text",
      "copy-message",
      (b) => void copyWithFeedback(b, message.content),
    ),
  ];
  if (message.role === "user")
    buttons.push(
      button("Edit", "Change this message and send it again", "edit-message", () =>
        startEdit(view, message, actions),
      ),
    );
  else
    buttons.push(
      button("Regenerate", "Answer this again", "regenerate-message", () => actions.regenerate(message.id)),
    );
  buttons.push(button("Delete", "Delete this message", "delete-message", () => actions.remove(message.id)));
  view.actions.replaceChildren(...buttons);
}

/** Turns the message into a text box with Send and Cancel; Enter sends (Shift+Enter: a new line). */
function startEdit(view: MessageView, message: StoredMessage, actions: MessageActions): void {
  const area = document.createElement("textarea");
  area.className = "edit-field";
  area.value = message.content;
  area.rows = Math.min(12, message.content.split("\n").length + 1);
  area.setAttribute("aria-label", "Edit message");
  const send = document.createElement("button");
  send.type = "button";
  send.className = "small primary edit-send";
  send.textContent = "Send";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "small edit-cancel";
  cancel.textContent = "Cancel";
  const finish = () => {
    view.body.hidden = false;
    view.actions.hidden = false;
    area.remove();
    row.remove();
  };
  const row = document.createElement("div");
  row.className = "edit-actions";
  row.append(send, cancel);
  send.addEventListener("click", () => {
    const text = area.value;
    if (text.trim() === "") return;
    finish();
    actions.edit(message.id, text);
  });
  cancel.addEventListener("click", finish);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !coarsePointer()) {
      event.preventDefault();
      send.click();
    } else if (event.key === "Escape") {
      finish();
    }
  });
  view.body.hidden = true;
  view.actions.hidden = true;
  view.root.insertBefore(area, view.stats);
  view.root.insertBefore(row, view.stats);
  area.focus();
}

/** A touch screen's keyboard: its return key adds a line, sending is the Send button's job. */
export function coarsePointer(): boolean {
  return window.matchMedia("(pointer: coarse)").matches;
}

export function showStats(view: MessageView, stats: MessageStats): void {
  const parts: string[] = [];
  if (stats.timeToFirstTokenMs !== null) parts.push(`TTFT ${Math.round(stats.timeToFirstTokenMs)} ms`);
  if (stats.tokensPerSecond !== null) parts.push(`${stats.tokensPerSecond.toFixed(1)} tokens/s`);
  parts.push(`${stats.completionTokens} tokens`);
  if (stats.finishReason === "abort") parts.push("stopped");
  else if (stats.finishReason === "length") parts.push("max tokens reached");
  else if (stats.finishReason === null) parts.push("the connection ended early");
  view.stats.textContent = parts.join(" · ");
  view.root.dataset.ttftMs = String(stats.timeToFirstTokenMs ?? "");
  view.root.dataset.tokensPerSecond = String(stats.tokensPerSecond ?? "");
  view.root.dataset.completionTokens = String(stats.completionTokens);
  view.root.dataset.finishReason = stats.finishReason ?? "";
}

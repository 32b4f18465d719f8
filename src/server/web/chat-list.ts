/**
 * The list of saved chats (the side panel): one row per conversation, newest first, with Rename (an
 * inline field: Enter keeps, Escape cancels) and Delete. The controller owns the data; this only draws
 * it and reports what was clicked.
 */
import type { Conversation } from "./conversation-io.js";

export interface ChatListActions {
  open(id: string): void;
  rename(id: string, title: string): void;
  remove(id: string): void;
}

/** Pencil and bin, drawn with the page's stroke icons (no icon font: the page loads nothing else). */
const ICON_PATHS = {
  rename: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
  delete: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
};

const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function renderChatList(
  list: HTMLUListElement,
  conversations: readonly Conversation[],
  currentId: string | null,
  actions: ChatListActions,
): void {
  const rows = conversations.map((conversation) => {
    const li = document.createElement("li");
    li.className = "chat-item";
    li.dataset.id = conversation.id;
    if (conversation.id === currentId) li.setAttribute("aria-current", "true");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "chat-open";
    const title = document.createElement("span");
    title.className = "chat-title";
    title.textContent = conversation.title;
    const when = document.createElement("span");
    when.className = "chat-when";
    when.textContent = DATE.format(conversation.updatedAt);
    open.append(title, when);
    open.title = conversation.title;
    open.addEventListener("click", () => actions.open(conversation.id));
    const rename = iconButton("rename", `Rename "${conversation.title}"`, "chat-rename");
    rename.addEventListener("click", () => startRename(open, conversation, actions));
    const remove = iconButton("delete", `Delete "${conversation.title}"`, "chat-delete");
    remove.addEventListener("click", () => actions.remove(conversation.id));
    li.append(open, rename, remove);
    return li;
  });
  list.replaceChildren(...rows);
}

function iconButton(icon: keyof typeof ICON_PATHS, title: string, className: string): HTMLButtonElement {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `small ${className}`;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICON_PATHS[icon]);
  svg.append(path);
  button.append(svg);
  button.title = title;
  button.setAttribute("aria-label", title);
  return button;
}

function startRename(open: HTMLButtonElement, conversation: Conversation, actions: ChatListActions): void {
  const field = document.createElement("input");
  field.type = "text";
  field.className = "chat-rename-field";
  field.value = conversation.title;
  field.setAttribute("aria-label", "New title");
  open.replaceWith(field);
  field.focus();
  field.select();
  let done = false;
  const finish = (keep: boolean) => {
    if (done) return;
    done = true;
    const title = field.value.trim();
    field.replaceWith(open);
    if (keep && title !== "" && title !== conversation.title) actions.rename(conversation.id, title);
  };
  field.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      finish(false);
    }
  });
  field.addEventListener("blur", () => finish(true));
}

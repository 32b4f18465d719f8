/**
 * The settings panel in the browser: its inputs (built by page.ts from SAMPLING_FIELDS), saved in
 * localStorage on every change and restored on load, the request fields they make, and the API key row.
 */
import { requestParams, SAMPLING_FIELDS, type SettingValues } from "./settings-fields.js";

const STORAGE_KEY = "awq-chat-settings";

interface Stored {
  system?: string;
  apiKey?: string;
  fields?: SettingValues;
}

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the chat page has no #${id}`);
  return found as T;
}

export class SettingsPanel {
  readonly root = byId<HTMLElement>("settings");
  readonly systemPrompt = byId<HTMLTextAreaElement>("system-prompt");
  readonly apiKey = byId<HTMLInputElement>("api-key");
  private readonly apiKeyRow = byId<HTMLDivElement>("api-key-row");
  private readonly apiKeyHint = byId<HTMLParagraphElement>("api-key-hint");
  private readonly inputs = new Map(
    SAMPLING_FIELDS.map((field) => [field.id, byId<HTMLInputElement | HTMLTextAreaElement>(field.id)]),
  );

  constructor(private readonly onToggle: (open: boolean) => void) {
    this.restore();
    for (const input of [this.systemPrompt, this.apiKey, ...this.inputs.values()]) {
      input.addEventListener("input", () => {
        input.removeAttribute("aria-invalid");
        this.save();
      });
      input.addEventListener("change", () => this.save());
    }
    byId<HTMLButtonElement>("reset-settings").addEventListener("click", () => this.reset());
    byId<HTMLButtonElement>("close-settings").addEventListener("click", () => this.setOpen(false));
  }

  get open(): boolean {
    return this.root.classList.contains("open");
  }

  setOpen(open: boolean): void {
    this.root.classList.toggle("open", open);
    this.onToggle(open);
  }

  /** The request's sampling fields; throws SettingsError (and marks the input) when one is bad. */
  params(): Record<string, unknown> {
    try {
      return requestParams(this.values());
    } catch (err) {
      const id = (err as { fieldId?: string }).fieldId;
      const input = id === undefined ? undefined : this.inputs.get(id);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        this.setOpen(true);
        input.scrollIntoView({ block: "nearest" });
      }
      throw err;
    }
  }

  get system(): string {
    return this.systemPrompt.value.trim();
  }

  /**
   * Shows the key field with why it is needed and opens the panel; `focus` also puts the cursor there (not
   * when the check follows the user's own edit of the key: they may have moved on to the message box).
   */
  askForKey(why: string, focus = true): void {
    this.apiKeyRow.hidden = false;
    this.apiKeyHint.textContent = why;
    this.setOpen(true);
    this.apiKeyRow.scrollIntoView({ block: "nearest" });
    if (focus) this.apiKey.focus();
  }

  clearKeyHint(): void {
    this.apiKeyHint.textContent = "";
  }

  private values(): SettingValues {
    const values: SettingValues = {};
    for (const [id, input] of this.inputs)
      values[id] =
        input instanceof HTMLInputElement && input.type === "checkbox" ? input.checked : input.value;
    return values;
  }

  private reset(): void {
    for (const input of this.inputs.values()) {
      if (input instanceof HTMLInputElement && input.type === "checkbox") input.checked = false;
      else input.value = "";
      input.removeAttribute("aria-invalid");
    }
    this.save();
  }

  private restore(): void {
    let stored: Stored = {};
    try {
      stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}") as Stored;
    } catch {
      // private mode or a corrupt entry: start from the defaults
    }
    if (typeof stored.system === "string") this.systemPrompt.value = stored.system;
    if (typeof stored.apiKey === "string" && stored.apiKey !== "") {
      this.apiKey.value = stored.apiKey;
      this.apiKeyRow.hidden = false;
    }
    for (const [id, input] of this.inputs) {
      const value = stored.fields?.[id];
      if (input instanceof HTMLInputElement && input.type === "checkbox") input.checked = value === true;
      else if (typeof value === "string") input.value = value;
    }
  }

  private save(): void {
    const stored: Stored = {
      system: this.systemPrompt.value,
      apiKey: this.apiKey.value,
      fields: this.values(),
    };
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
    } catch {
      // storage unavailable: settings last for this page only
    }
  }
}

/**
 * Copies text to the clipboard. navigator.clipboard exists only in secure contexts (https, localhost); a
 * page opened over the LAN as http://192.168.x.y:8000 has none, so a hidden textarea and execCommand copy
 * it there. Resolves false when neither way worked.
 */
export async function copyText(text: string): Promise<boolean> {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // denied (no user gesture, permissions): try the old way
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

/** Copies, then says so on `button` for a moment ("Copied" or "Copy failed"). */
export async function copyWithFeedback(button: HTMLButtonElement, text: string): Promise<void> {
  const label = button.dataset.label ?? button.textContent ?? "Copy";
  button.dataset.label = label;
  const copied = await copyText(text);
  button.textContent = copied ? "Copied" : "Copy failed";
  button.dataset.copied = String(copied);
  setTimeout(() => {
    button.textContent = label;
    delete button.dataset.copied;
  }, 1500);
}

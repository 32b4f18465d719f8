/**
 * The page's RenderHooks (see markdown.ts): code coloured by highlight.js, formulas typeset by KaTeX, both
 * served by our own server from node_modules (see routes.ts), so the page works with no internet.
 *
 * highlight.js returns HTML. It is never inserted as HTML: it is parsed into an inert document (DOMParser
 * runs no script and loads nothing) and only its text and `<span class>` structure are rebuilt with
 * createElement, so even a highlighter bug could not add markup to the page. KaTeX builds DOM nodes itself
 * (katex.render), with `trust` off: no \href, \url or \htmlClass from model text.
 */
import hljs from "@highlightjs/cdn-assets/es/highlight.min.js";
import katex from "katex";
import type { RenderHooks } from "./markdown.js";

/** Longer code is shown plain: colouring it on every streamed token would make the page lag. */
const MAX_HIGHLIGHT_CHARS = 100_000;
/** Class names highlight.js uses (`hljs-keyword`, `function_`); anything else is dropped. */
const CLASS_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Finished pieces, by their source: a streaming answer is re-rendered many times a second, and its earlier
 * formulas and code blocks need not be typeset again each time. Bounded: the oldest entry goes first.
 */
class NodeCache {
  private readonly nodes = new Map<string, Node>();
  constructor(private readonly size: number) {}

  /** A copy of the cached node for `key`, or `build()`'s result (cached when it is not null). */
  get<T extends Node>(key: string, build: () => T | null): T | null {
    const hit = this.nodes.get(key);
    if (hit) return hit.cloneNode(true) as T;
    const built = build();
    if (built === null) return null;
    this.nodes.set(key, built.cloneNode(true));
    if (this.nodes.size > this.size) this.nodes.delete(this.nodes.keys().next().value!);
    return built;
  }
}

const mathCache = new NodeCache(500);
const codeCache = new NodeCache(100);

export function highlightCode(doc: Document, code: string, lang: string): DocumentFragment | null {
  if (doc !== document) return highlightUncached(doc, code, lang);
  return codeCache.get(`${lang}\n${code}`, () => highlightUncached(doc, code, lang));
}

function highlightUncached(doc: Document, code: string, lang: string): DocumentFragment | null {
  if (code.length > MAX_HIGHLIGHT_CHARS || hljs.getLanguage(lang) === undefined) return null;
  let html: string;
  try {
    html = hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
  } catch {
    return null;
  }
  const parsed = new DOMParser().parseFromString(`<!doctype html><body>${html}`, "text/html");
  const fragment = doc.createDocumentFragment();
  copySpans(doc, parsed.body, fragment);
  // Never show something other than the code: if the rebuild lost or changed text, show it plain.
  return fragment.textContent === code ? fragment : null;
}

/** Rebuilds `from`'s children under `to`: text as text, `<span>` with its safe class names, else unwrapped. */
function copySpans(doc: Document, from: Node, to: Node): void {
  for (const child of from.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) {
      to.appendChild(doc.createTextNode(child.nodeValue ?? ""));
    } else if (child instanceof Element && child.tagName === "SPAN") {
      const span = doc.createElement("span");
      for (const name of child.classList) if (CLASS_NAME.test(name)) span.classList.add(name);
      copySpans(doc, child, span);
      to.appendChild(span);
    } else {
      copySpans(doc, child, to);
    }
  }
}

export function renderMath(doc: Document, tex: string, display: boolean): Node {
  if (doc !== document) return typeset(doc, tex, display);
  return mathCache.get(`${display ? "D" : "I"}${tex}`, () => typeset(doc, tex, display))!;
}

function typeset(doc: Document, tex: string, display: boolean): HTMLElement {
  const box = doc.createElement("span");
  box.className = display ? "math math-display" : "math";
  try {
    katex.render(tex, box, {
      displayMode: display,
      throwOnError: true,
      trust: false,
      strict: "ignore",
      maxSize: 20,
      maxExpand: 500,
      output: "htmlAndMathml",
    });
  } catch (err) {
    // Not valid TeX (or not yet: mid-stream): show the source, and why on hover.
    box.replaceChildren(doc.createTextNode(display ? `$$${tex}$$` : `$${tex}$`));
    box.classList.add("math-error");
    box.title = err instanceof Error ? err.message : String(err);
  }
  return box;
}

export const richTextHooks: RenderHooks = { highlight: highlightCode, math: renderMath };

/**
 * Model output -> DOM nodes, safely: the Markdown tree from markdown-parse.ts is built with createElement,
 * createTextNode and a validated `href` only. Model text is never parsed as HTML (no innerHTML, no
 * insertAdjacentHTML), so `<script>` or `<img onerror>` in a reply shows up as literal text.
 *
 * Takes the `document` to build with, so it has no global state and works in any window. Syntax colouring
 * and TeX come in through RenderHooks (the page passes highlight.js and KaTeX, see rich-text.ts); without
 * them code is plain and math shows its source.
 */
import { copyWithFeedback } from "./clipboard.js";
import { type Align, type Block, type Inline, parseMarkdown, safeHttpUrl } from "./markdown-parse.js";

export interface RenderHooks {
  /** The code's text as coloured nodes, or null to show it plain (an unknown language). */
  highlight?: (doc: Document, code: string, lang: string) => DocumentFragment | null;
  /** One formula as nodes; `display` for a formula on its own line. */
  math?: (doc: Document, tex: string, display: boolean) => Node;
}

/** Renders `text` into a fragment owned by `doc`. */
export function renderMarkdown(doc: Document, text: string, hooks: RenderHooks = {}): DocumentFragment {
  const fragment = doc.createDocumentFragment();
  for (const block of parseMarkdown(text)) fragment.append(renderBlock(doc, block, hooks));
  return fragment;
}

function renderBlock(doc: Document, block: Block, hooks: RenderHooks): Node {
  switch (block.type) {
    case "paragraph":
      return withInline(doc, doc.createElement("p"), block.children, hooks);
    case "heading":
      // Replies sit inside the page's own headings: levels 1-2 would outrank them.
      return withInline(doc, doc.createElement(`h${Math.min(6, block.level + 2)}`), block.children, hooks);
    case "code":
      return renderCode(doc, block.lang, block.text, hooks);
    case "table":
      return renderTable(doc, block.align, block.header, block.rows, hooks);
    case "math":
      return renderMath(doc, block.tex, true, hooks);
    case "list": {
      const list = doc.createElement(block.ordered ? "ol" : "ul");
      if (block.ordered && block.start !== 1) (list as HTMLOListElement).start = block.start;
      for (const item of block.items) {
        const li = doc.createElement("li");
        // A tight item (one paragraph) reads better without the paragraph's margins.
        const only = item.length === 1 ? item[0]! : null;
        if (only?.type === "paragraph") withInline(doc, li, only.children, hooks);
        else for (const child of item) li.append(renderBlock(doc, child, hooks));
        list.append(li);
      }
      return list;
    }
    case "quote": {
      const quote = doc.createElement("blockquote");
      for (const child of block.children) quote.append(renderBlock(doc, child, hooks));
      return quote;
    }
    case "rule":
      return doc.createElement("hr");
  }
}

/**
 * A code block: a head with the language and a Copy button (copies the code as written, not the colours),
 * then `pre > code`.
 */
function renderCode(doc: Document, lang: string, text: string, hooks: RenderHooks): HTMLElement {
  const box = doc.createElement("div");
  box.className = "code-block";
  const head = doc.createElement("div");
  head.className = "code-head";
  const label = doc.createElement("span");
  label.className = "code-lang";
  label.textContent = lang;
  const copy = doc.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.textContent = "Copy";
  copy.title = "Copy the code";
  copy.addEventListener("click", () => void copyWithFeedback(copy, text));
  head.append(label, copy);
  const pre = doc.createElement("pre");
  const code = doc.createElement("code");
  if (lang !== "") {
    code.className = `language-${lang}`;
    pre.dataset.lang = lang;
  }
  const coloured = lang === "" ? null : (hooks.highlight?.(doc, text, lang) ?? null);
  if (coloured) {
    code.classList.add("hljs");
    code.append(coloured);
  } else {
    code.textContent = text;
  }
  pre.append(code);
  box.append(head, pre);
  return box;
}

/** A table inside a scrolling box, so a wide one scrolls by itself instead of widening the page. */
function renderTable(
  doc: Document,
  align: Align[],
  header: Inline[][],
  rows: Inline[][][],
  hooks: RenderHooks,
): HTMLElement {
  const box = doc.createElement("div");
  box.className = "table-box";
  const table = doc.createElement("table");
  const row = (cells: Inline[][], tag: "th" | "td") => {
    const tr = doc.createElement("tr");
    cells.forEach((cell, column) => {
      const td = withInline(doc, doc.createElement(tag), cell, hooks);
      const side = align[column];
      if (side) td.style.textAlign = side;
      tr.append(td);
    });
    return tr;
  };
  const head = doc.createElement("thead");
  head.append(row(header, "th"));
  table.append(head);
  if (rows.length > 0) {
    const body = doc.createElement("tbody");
    for (const cells of rows) body.append(row(cells, "td"));
    table.append(body);
  }
  box.append(table);
  return box;
}

function renderMath(doc: Document, tex: string, display: boolean, hooks: RenderHooks): Node {
  if (hooks.math) return hooks.math(doc, tex, display);
  const source = doc.createElement(display ? "div" : "span");
  source.className = display ? "math math-display" : "math";
  source.textContent = display ? `$$${tex}$$` : `$${tex}$`;
  return source;
}

function withInline(doc: Document, parent: HTMLElement, nodes: Inline[], hooks: RenderHooks): HTMLElement {
  for (const node of nodes) parent.append(renderInline(doc, node, hooks));
  return parent;
}

function renderInline(doc: Document, node: Inline, hooks: RenderHooks): Node {
  switch (node.type) {
    case "text":
      return doc.createTextNode(node.text);
    case "code": {
      const code = doc.createElement("code");
      code.textContent = node.text;
      return code;
    }
    case "strong":
      return withInline(doc, doc.createElement("strong"), node.children, hooks);
    case "em":
      return withInline(doc, doc.createElement("em"), node.children, hooks);
    case "math":
      return renderMath(doc, node.tex, node.display, hooks);
    case "link": {
      // The parser only makes http(s) links; checked again here so no other path can add a javascript: one.
      const href = safeHttpUrl(node.href);
      if (href === null) return withInline(doc, doc.createElement("span"), node.children, hooks);
      const link = doc.createElement("a");
      link.href = href;
      link.rel = "noopener noreferrer nofollow";
      link.target = "_blank";
      return withInline(doc, link, node.children, hooks);
    }
    case "break":
      return doc.createElement("br");
  }
}

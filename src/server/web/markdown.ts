/**
 * Model output -> DOM nodes, safely: the Markdown tree from markdown-parse.ts is built with createElement,
 * createTextNode and a validated `href` only. Model text is never parsed as HTML (no innerHTML, no
 * insertAdjacentHTML), so `<script>` or `<img onerror>` in a reply shows up as literal text.
 *
 * Takes the `document` to build with, so it has no global state and works in any window.
 */
import { type Block, type Inline, parseMarkdown, safeHttpUrl } from "./markdown-parse.js";

/** Renders `text` into a fragment owned by `doc`. */
export function renderMarkdown(doc: Document, text: string): DocumentFragment {
  const fragment = doc.createDocumentFragment();
  for (const block of parseMarkdown(text)) fragment.append(renderBlock(doc, block));
  return fragment;
}

function renderBlock(doc: Document, block: Block): Node {
  switch (block.type) {
    case "paragraph":
      return withInline(doc, doc.createElement("p"), block.children);
    case "heading":
      // Replies sit inside the page's own headings: levels 1-2 would outrank them.
      return withInline(doc, doc.createElement(`h${Math.min(6, block.level + 2)}`), block.children);
    case "code": {
      const pre = doc.createElement("pre");
      const code = doc.createElement("code");
      if (block.lang !== "") {
        code.className = `language-${block.lang}`;
        pre.dataset.lang = block.lang;
      }
      code.textContent = block.text;
      pre.append(code);
      return pre;
    }
    case "list": {
      const list = doc.createElement(block.ordered ? "ol" : "ul");
      if (block.ordered && block.start !== 1) (list as HTMLOListElement).start = block.start;
      for (const item of block.items) {
        const li = doc.createElement("li");
        // A tight item (one paragraph) reads better without the paragraph's margins.
        const only = item.length === 1 ? item[0]! : null;
        if (only?.type === "paragraph") withInline(doc, li, only.children);
        else for (const child of item) li.append(renderBlock(doc, child));
        list.append(li);
      }
      return list;
    }
    case "quote": {
      const quote = doc.createElement("blockquote");
      for (const child of block.children) quote.append(renderBlock(doc, child));
      return quote;
    }
    case "rule":
      return doc.createElement("hr");
  }
}

function withInline(doc: Document, parent: HTMLElement, nodes: Inline[]): HTMLElement {
  for (const node of nodes) parent.append(renderInline(doc, node));
  return parent;
}

function renderInline(doc: Document, node: Inline): Node {
  switch (node.type) {
    case "text":
      return doc.createTextNode(node.text);
    case "code": {
      const code = doc.createElement("code");
      code.textContent = node.text;
      return code;
    }
    case "strong":
      return withInline(doc, doc.createElement("strong"), node.children);
    case "em":
      return withInline(doc, doc.createElement("em"), node.children);
    case "link": {
      // The parser only makes http(s) links; checked again here so no other path can add a javascript: one.
      const href = safeHttpUrl(node.href);
      if (href === null) return withInline(doc, doc.createElement("span"), node.children);
      const link = doc.createElement("a");
      link.href = href;
      link.rel = "noopener noreferrer nofollow";
      link.target = "_blank";
      return withInline(doc, link, node.children);
    }
    case "break":
      return doc.createElement("br");
  }
}

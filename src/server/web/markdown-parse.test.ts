import assert from "node:assert/strict";
import { test } from "node:test";
import { type Block, type Inline, parseInline, parseMarkdown, safeHttpUrl } from "./markdown-parse.js";

/** The text a reader would see, markers gone: checks that nothing was lost or duplicated. */
function plain(nodes: Inline[]): string {
  return nodes
    .map((n) =>
      n.type === "text" || n.type === "code"
        ? n.text
        : n.type === "break"
          ? "\n"
          : n.type === "math"
            ? `$${n.tex}$`
            : plain(n.children),
    )
    .join("");
}

test("paragraphs split on blank lines; single newlines become breaks", () => {
  const blocks = parseMarkdown("first line\nsecond line\n\nnext paragraph");
  assert.deepEqual(blocks, [
    {
      type: "paragraph",
      children: [
        { type: "text", text: "first line" },
        { type: "break" },
        { type: "text", text: "second line" },
      ],
    },
    { type: "paragraph", children: [{ type: "text", text: "next paragraph" }] },
  ]);
});

test("fenced code keeps its text verbatim, language cleaned, and an unclosed fence runs to the end", () => {
  const closed = parseMarkdown("```ts\nconst a = `<b>` ** 2;\n  indented\n```\nafter");
  assert.deepEqual(closed[0], { type: "code", lang: "ts", text: "const a = `<b>` ** 2;\n  indented" });
  assert.deepEqual(closed[1], { type: "paragraph", children: [{ type: "text", text: "after" }] });
  const streaming = parseMarkdown("Here:\n```python\nprint('hi')\n");
  assert.deepEqual(streaming[1], { type: "code", lang: "python", text: "print('hi')\n" });
  const hostileLang = parseMarkdown('```"><img\nx\n```');
  assert.equal((hostileLang[0] as { lang: string }).lang, "img");
});

test("inline code, bold, italic and nesting", () => {
  assert.deepEqual(parseInline("use `npm test` **now** or *later* and __this__ _too_"), [
    { type: "text", text: "use " },
    { type: "code", text: "npm test" },
    { type: "text", text: " " },
    { type: "strong", children: [{ type: "text", text: "now" }] },
    { type: "text", text: " or " },
    { type: "em", children: [{ type: "text", text: "later" }] },
    { type: "text", text: " and " },
    { type: "strong", children: [{ type: "text", text: "this" }] },
    { type: "text", text: " " },
    { type: "em", children: [{ type: "text", text: "too" }] },
  ]);
  assert.deepEqual(parseInline("**bold *and italic***")[0], {
    type: "strong",
    children: [
      { type: "text", text: "bold " },
      { type: "em", children: [{ type: "text", text: "and italic" }] },
    ],
  });
});

test("markers that are not emphasis stay literal", () => {
  for (const text of [
    "snake_case_name",
    "2 * 3 * 4",
    "**unclosed bold",
    "a ** b",
    "`unclosed code",
    "\\*escaped\\*",
  ]) {
    const nodes = parseInline(text);
    assert.ok(
      nodes.every((n) => n.type === "text"),
      `${text} -> ${JSON.stringify(nodes)}`,
    );
  }
  assert.equal(plain(parseInline("\\*escaped\\*")), "*escaped*");
  assert.equal(plain(parseInline("snake_case_name")), "snake_case_name");
});

test("links: only absolute http(s) URLs become links", () => {
  assert.deepEqual(parseInline("see [the docs](https://example.org/a?b=1)."), [
    { type: "text", text: "see " },
    { type: "link", href: "https://example.org/a?b=1", children: [{ type: "text", text: "the docs" }] },
    { type: "text", text: "." },
  ]);
  for (const text of [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](/relative/path)",
    "[x](vbscript:msgbox)",
  ]) {
    const nodes = parseInline(text);
    assert.ok(!JSON.stringify(nodes).includes('"link"'), `${text} -> ${JSON.stringify(nodes)}`);
  }
  assert.deepEqual(parseInline("go to https://example.org/x, then"), [
    { type: "text", text: "go to " },
    {
      type: "link",
      href: "https://example.org/x",
      children: [{ type: "text", text: "https://example.org/x" }],
    },
    { type: "text", text: ", then" },
  ]);
  assert.equal(safeHttpUrl("javascript:alert(1)"), null);
  assert.equal(safeHttpUrl("HTTPS://Example.org"), "https://example.org/");
});

test("HTML in model text is kept as text, never as a node of its own", () => {
  const text = '<script>window.pwned = 1</script>\n\n<img src=x onerror="window.pwned = 2">';
  const blocks = parseMarkdown(text);
  assert.deepEqual(
    blocks.map((b) => (b.type === "paragraph" ? plain(b.children) : b.type)),
    ["<script>window.pwned = 1</script>", '<img src=x onerror="window.pwned = 2">'],
  );
});

test("lists: ordered with start, unordered, nested, and after a paragraph line", () => {
  const blocks = parseMarkdown("Steps:\n3. one\n4. two\n   - sub a\n   - sub b\n5. three\n\n- x\n- y");
  assert.equal(blocks[0]!.type, "paragraph");
  const ordered = blocks[1] as Extract<Block, { type: "list" }>;
  assert.equal(ordered.ordered, true);
  assert.equal(ordered.start, 3);
  assert.equal(ordered.items.length, 3);
  const second = ordered.items[1]!;
  assert.equal(second[0]!.type, "paragraph");
  const nested = second[1] as Extract<Block, { type: "list" }>;
  assert.equal(nested.type, "list");
  assert.equal(nested.ordered, false);
  assert.equal(nested.items.length, 2);
  const bullets = blocks[2] as Extract<Block, { type: "list" }>;
  assert.equal(bullets.ordered, false);
  assert.deepEqual(
    bullets.items.map((item) => plain((item[0] as { children: Inline[] }).children)),
    ["x", "y"],
  );
});

test("headings, rules and quotes", () => {
  assert.deepEqual(parseMarkdown("## Title ##\n---\n> quoted **text**"), [
    { type: "heading", level: 2, children: [{ type: "text", text: "Title" }] },
    { type: "rule" },
    {
      type: "quote",
      children: [
        {
          type: "paragraph",
          children: [
            { type: "text", text: "quoted " },
            { type: "strong", children: [{ type: "text", text: "text" }] },
          ],
        },
      ],
    },
  ]);
});

test("deeply nested input does not recurse without bound", () => {
  const deep = `${"> ".repeat(5000)}x\n${"- ".repeat(5000)}y\n${"[".repeat(5000)}z${"*".repeat(5000)}`;
  const blocks = parseMarkdown(deep);
  assert.ok(blocks.length > 0);
});

test("GitHub tables: alignment, inline Markdown in cells, escaped pipes, ragged rows, the table ends at a blank line", () => {
  const blocks = parseMarkdown(
    [
      "Results:",
      "| Model | Size | Score |",
      "|:------|:----:|------:|",
      "| **tiny** | `1 \\| 2` | 0.5 |",
      "| big | 7B |",
      "| x | y | z | extra |",
      "",
      "after",
    ].join("\n"),
  );
  assert.equal(blocks.length, 3);
  assert.deepEqual(blocks[0], { type: "paragraph", children: [{ type: "text", text: "Results:" }] });
  const table = blocks[1]!;
  assert.equal(table.type, "table");
  if (table.type !== "table") return;
  assert.deepEqual(table.align, ["left", "center", "right"]);
  assert.deepEqual(table.header.map(plain), ["Model", "Size", "Score"]);
  assert.deepEqual(
    table.rows.map((row) => row.map(plain)),
    [
      ["tiny", "1 | 2", "0.5"],
      ["big", "7B", ""],
      ["x", "y", "z"],
    ],
  );
  assert.equal(table.rows[0]![0]![0]!.type, "strong");
  assert.equal(table.rows[0]![1]![0]!.type, "code");
  assert.deepEqual(blocks[2], { type: "paragraph", children: [{ type: "text", text: "after" }] });
  // Without pipes at the ends, and no alignment.
  const bare = parseMarkdown("a | b\n--- | ---\n1 | 2");
  assert.deepEqual(bare[0], {
    type: "table",
    align: [null, null],
    header: [[{ type: "text", text: "a" }], [{ type: "text", text: "b" }]],
    rows: [[[{ type: "text", text: "1" }], [{ type: "text", text: "2" }]]],
  });
  // A delimiter row whose cell count differs from the header is no table; neither is a lone pipe line.
  assert.equal(parseMarkdown("a | b | c\n--- | ---")[0]!.type, "paragraph");
  assert.equal(parseMarkdown("x | y")[0]!.type, "paragraph");
});

test("math: $inline$, \\(inline\\), $$display$$ and \\[display\\], with prices and shell variables left as text", () => {
  assert.deepEqual(parseInline("Euler: $e^{i\\pi} + 1 = 0$ and \\(a^2\\)."), [
    { type: "text", text: "Euler: " },
    { type: "math", tex: "e^{i\\pi} + 1 = 0", display: false },
    { type: "text", text: " and " },
    { type: "math", tex: "a^2", display: false },
    { type: "text", text: "." },
  ]);
  assert.deepEqual(parseInline("so $$\\sum_i x_i$$ holds"), [
    { type: "text", text: "so " },
    { type: "math", tex: "\\sum_i x_i", display: true },
    { type: "text", text: " holds" },
  ]);
  for (const text of ["It costs $5 or $10 today.", "echo $HOME and $PATH", "a lone $ sign", "price: \\$4$"]) {
    assert.ok(
      parseInline(text).every((n) => n.type !== "math"),
      `no math in ${JSON.stringify(text)}`,
    );
  }
  assert.equal(plain(parseInline("It costs $5 or $10 today.")), "It costs $5 or $10 today.");
  // Display blocks on their own lines, also right after a paragraph line.
  assert.deepEqual(parseMarkdown("The sum:\n$$\n\\sum_{k=1}^n k = \\frac{n(n+1)}{2}\n$$\nso."), [
    { type: "paragraph", children: [{ type: "text", text: "The sum:" }] },
    { type: "math", tex: "\\sum_{k=1}^n k = \\frac{n(n+1)}{2}" },
    { type: "paragraph", children: [{ type: "text", text: "so." }] },
  ]);
  assert.deepEqual(parseMarkdown("\\[ x = \\sqrt{2} \\]"), [{ type: "math", tex: "x = \\sqrt{2}" }]);
  // Cut mid-formula by a stream: text until it closes.
  assert.equal(parseMarkdown("$$\n\\frac{1}{")[0]!.type, "paragraph");
  // Inside code it is code.
  assert.deepEqual(parseInline("`$x$`"), [{ type: "code", text: "$x$" }]);
});

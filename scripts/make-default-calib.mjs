// Writes data/calib/kjv-sample.txt, the calibration text `awq quantize` uses when --calib is not given: every
// 16th chapter of the King James Bible (public domain: the 1611 translation; see data/calib/README.md), as
// paragraphs of a few verses (one calibration sample each, about 120 tokens: well under the 512-token block).
// The text comes from Debian's `bible-kjv` program (apt-get install bible-kjv), so the file can be remade:
//   node scripts/make-default-calib.mjs
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "data", "calib", "kjv-sample.txt");
const EVERY_NTH_CHAPTER = 16;
const PARAGRAPH_CHARS = 500;

const r = spawnSync("bible", ["-m", "8192", "Gen1:1-Rev22:21"], { encoding: "utf8", maxBuffer: 64 << 20 });
if (r.status !== 0 || r.error) {
  process.stderr.write(`bible (Debian package bible-kjv) failed: ${r.error?.message ?? r.stderr}\n`);
  process.exit(1);
}

/** Chapters as lists of verse texts (the program prints "Book N" headers and "  V text" lines, wrapped). */
const chapters = [];
for (const line of r.stdout.split("\n")) {
  if (line.trim() === "") continue;
  const verse = /^\s+\d+ (.*)$/.exec(line);
  const last = chapters.at(-1);
  if (/^(\d )?[A-Z][A-Za-z ]* \d+$/.test(line)) chapters.push([]);
  else if (verse && last) last.push(verse[1]);
  else if (last && last.length > 0) last[last.length - 1] += ` ${line.trim()}`;
}

// Each chapter's verses in paragraphs; then the paragraphs interleaved (the first of every chapter, then the
// second, ...), so that the first --samples texts, which quantize takes, span the whole book.
const byChapter = [];
for (let c = 0; c < chapters.length; c += EVERY_NTH_CHAPTER) {
  const own = [];
  let paragraph = "";
  for (const verse of chapters[c]) {
    if (paragraph.length > 0 && paragraph.length + verse.length > PARAGRAPH_CHARS) {
      own.push(paragraph);
      paragraph = "";
    }
    paragraph += (paragraph ? " " : "") + verse;
  }
  if (paragraph) own.push(paragraph);
  byChapter.push(own);
}
const paragraphs = [];
for (let i = 0; byChapter.some((own) => i < own.length); i++) {
  for (const own of byChapter) if (i < own.length) paragraphs.push(own[i]);
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${paragraphs.join("\n\n")}\n`);
process.stdout.write(
  `${out}: ${paragraphs.length} paragraphs from ${Math.ceil(chapters.length / EVERY_NTH_CHAPTER)} of ${chapters.length} chapters\n`,
);

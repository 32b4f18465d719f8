import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createProgressBar, loadProgress, progressVisible } from "./progress.js";

/** A stream that records what is written; `isTTY` decides whether it looks like a terminal. */
function recorder(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, {
    isTTY,
    columns: 100,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
  });
  return { stream, text: () => chunks.join("") };
}

test("a terminal gets a bar with byte counts; --quiet and non-terminals get nothing", () => {
  const tty = recorder(true);
  const load = loadProgress({ stream: tty.stream });
  load(0, 2_000_000);
  load(2_000_000, 2_000_000);
  assert.match(tty.text(), /loading weights/);
  assert.match(tty.text(), /2\.0 MB \/ 2\.0 MB/);
  assert.match(tty.text(), /100%/);

  for (const [name, opts] of [
    ["pipe", { stream: recorder(false).stream }],
    ["quiet", { stream: recorder(true).stream, quiet: true }],
  ] as const) {
    assert.equal(progressVisible(opts), false, name);
    const bar = createProgressBar("work", { ...opts, total: 3, unit: "layers" });
    bar.increment();
    bar.stop();
  }
  const pipe = recorder(false);
  const bar = createProgressBar("work", { stream: pipe.stream, total: 3 });
  bar.update(3);
  bar.stop();
  assert.equal(pipe.text(), "");
});

test("counted bars show value/total and the unit, and a later total replaces the first", () => {
  const tty = recorder(true);
  const bar = createProgressBar("quantize", { stream: tty.stream, total: 4, unit: "layers" });
  bar.increment();
  bar.update(6, 8);
  bar.stop();
  bar.stop();
  assert.match(tty.text(), /quantize/);
  assert.match(tty.text(), /6\/8 layers/);
});

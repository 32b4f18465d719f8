import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import {
  buildCalibrationBlocks,
  CalibrationDataError,
  readCalibrationTexts,
  splitParagraphs,
} from "./calibration.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** Made with hyparquet-writer: columns id (INT32) and content (STRING), three rows. */
const parquetFixture = path.join(repoRoot, "test/fixtures/quant/calib.parquet");

/** One id per character (plus a BOS of 1), so block arithmetic is easy to follow. */
const charEncoder = { encode: (text: string) => [1, ...Array.from(text, (c) => c.charCodeAt(0))] };

describe("calibration texts", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "awq-calib-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test(".txt: one sample per blank-line separated paragraph, lines inside kept together", async () => {
    const file = path.join(dir, "a.txt");
    await writeFile(file, "first line\nsame sample\n\n\n  second  \r\n\r\nthird\n \nfourth\n");
    assert.deepEqual(await readCalibrationTexts(file), [
      "first line\nsame sample",
      "second",
      "third",
      "fourth",
    ]);
    assert.deepEqual(splitParagraphs("a\nb"), ["a\nb"]);
  });

  test(".jsonl: the --text-field field, and an error naming the line and the fields it has", async () => {
    const file = path.join(dir, "a.jsonl");
    await writeFile(file, '{"text": "one", "body": "uno"}\n\n{"text": "two", "body": "dos"}\n');
    assert.deepEqual(await readCalibrationTexts(file), ["one", "two"]);
    assert.deepEqual(await readCalibrationTexts(file, { textField: "body" }), ["uno", "dos"]);
    await assert.rejects(readCalibrationTexts(file, { textField: "content" }), (err: Error) => {
      assert.ok(err instanceof CalibrationDataError);
      assert.match(err.message, /a\.jsonl:1: no field "content" \(this line has: text, body\).*--text-field/);
      return true;
    });
    const bad = path.join(dir, "bad.jsonl");
    await writeFile(bad, '{"text": "ok"}\n{not json\n');
    await assert.rejects(readCalibrationTexts(bad), /bad\.jsonl:2: not valid JSON/);
  });

  test(".parquet: the chosen column, and an error listing the columns there are", async () => {
    const texts = await readCalibrationTexts(parquetFixture, { textField: "content" });
    assert.equal(texts.length, 3);
    assert.equal(texts[0], "In the beginning God created the heaven and the earth.");
    await assert.rejects(readCalibrationTexts(parquetFixture), (err: Error) => {
      assert.match(
        err.message,
        /no column "text" \(columns: id, content\); pick the text column with --text-field/,
      );
      return true;
    });
  });

  test("missing, empty and unknown-type files are clear errors", async () => {
    await assert.rejects(
      readCalibrationTexts(path.join(dir, "nope.txt")),
      /calibration file .*nope\.txt does not exist/,
    );
    const empty = path.join(dir, "empty.txt");
    await writeFile(empty, "\n \n\n");
    await assert.rejects(readCalibrationTexts(empty), /holds no text/);
    const csv = path.join(dir, "a.csv");
    await writeFile(csv, "text\nhello\n");
    await assert.rejects(readCalibrationTexts(csv), /unknown calibration file type "\.csv"; expected \.txt/);
  });
});

describe("calibration blocks (AutoAWQ's get_calib_dataset)", () => {
  test("skips over-long texts, stops after `samples` texts, concatenates and cuts seqlen blocks", () => {
    // Encoded lengths (with BOS): 4, 9 (> seqlen 6: skipped), 6, empty (ignored), 5, 3.
    const texts = ["abc", "abcdefgh", "  abcde ", "", "abcd", "ab"];
    const got = buildCalibrationBlocks(texts, charEncoder, { samples: 3, seqlen: 6 });
    assert.equal(got.textsUsed, 3); // "abc", "abcde", "abcd": the third kept text ends the collection
    assert.equal(got.textsTooLong, 1);
    assert.deepEqual(
      got.blocks.map((b) => Array.from(b)),
      [
        [1, 97, 98, 99, 1, 97],
        [98, 99, 100, 101, 1, 97],
      ],
    );
    assert.equal(got.tokensDropped, 15 - 12);
    const longSkipped = buildCalibrationBlocks(texts, charEncoder, { samples: 10, seqlen: 8 });
    assert.equal(longSkipped.textsTooLong, 1);
    assert.equal(longSkipped.textsUsed, 4);
  });

  test("too little text for one block names the counts and what to change", () => {
    assert.throws(
      () =>
        buildCalibrationBlocks(
          ["hello", "a very long text indeed"],
          charEncoder,
          { samples: 128, seqlen: 12 },
          "x.txt",
        ),
      (err: Error) => {
        assert.ok(err instanceof CalibrationDataError);
        assert.match(
          err.message,
          /x\.txt is too short: 1 usable text\(s\) .* give 6 tokens, less than one block of --seqlen 12/,
        );
        assert.match(err.message, /1 text\(s\) skipped for being longer than --seqlen/);
        return true;
      },
    );
    assert.throws(
      () => buildCalibrationBlocks(["a"], charEncoder, { samples: 0, seqlen: 4 }),
      /--samples must be a positive integer/,
    );
  });

  test("with the real Llama-2 tokenizer every block starts where AutoAWQ's would (BOS per text)", async () => {
    const tokenizer = await Tokenizer.load(path.join(repoRoot, "models/tiny-chat-awq"));
    const texts = Array.from({ length: 40 }, (_, i) => `Verse ${i}: And God said, Let there be light.`);
    const { blocks } = buildCalibrationBlocks(texts, tokenizer, { samples: 128, seqlen: 64 });
    const perText = tokenizer.encode(texts[0]).length;
    assert.equal(blocks.length, Math.floor((40 * perText) / 64));
    assert.equal(blocks[0][0], tokenizer.bosTokenId);
    assert.equal(blocks[0][perText], tokenizer.bosTokenId);
  });
});

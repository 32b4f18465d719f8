/**
 * XGrammar's instances: an abort (a failed check inside XGrammar) is told apart from a plain JS error, and the
 * instance records it, so that its owner stops using it (the grammar workers retire on it: grammar-pool.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isInstanceFault, loadXgrammar } from "./xgrammar-runtime.js";

test("an abort marks its instance and is an instance fault; a plain JS error is neither; instances are independent", async () => {
  const inst = await loadXgrammar();
  const other = await loadXgrammar();
  const { api } = inst;
  const info = await api.TokenizerInfo.createTokenizerInfo(["<unk>", "a", "b", "</s>"], "raw", false, 4, [3]);
  const compiler = await api.GrammarCompiler.createGrammarCompiler(info, false);
  const grammar = await compiler.compileGrammar('root ::= ("a" "b")+');
  const m = await api.GrammarMatcher.createGrammarMatcher(grammar, [3], false);
  assert.equal(m.acceptToken(1), true);
  assert.equal(inst.aborted, null, "sound after valid calls");

  // A plain JS error from the bindings' own JS (a matcher asked of nothing): the instance is untouched.
  await assert.rejects(
    api.GrammarMatcher.createGrammarMatcher(undefined as unknown as typeof grammar),
    (err: unknown) => err instanceof TypeError && !isInstanceFault(err),
  );
  assert.equal(isInstanceFault(new TypeError("x")), false);
  assert.equal(inst.aborted, null);

  // Rolling back past the history is a failed check inside XGrammar: Emscripten aborts the instance.
  let aborted: unknown = null;
  try {
    m.rollBack(5);
  } catch (err) {
    aborted = err;
  }
  assert.ok(aborted instanceof Error, "the rollback threw");
  assert.equal(isInstanceFault(aborted), true);
  assert.match(inst.aborted ?? "", /^Aborted\(/);
  assert.equal(other.aborted, null, "another instance is not marked");
});

/**
 * Does this tokenizer belong to this model? A tokenizer from another model loads fine and then produces ids
 * the embedding has no row for (a crash or garbage mid-request), or lacks the tokens the chat format is built
 * from. Checked once at load, with a message that names the file and the mismatch.
 */
import type { ModelConfig } from "../model/types.js";
import { END_OF_TURN_TOKEN, type Tokenizer } from "./tokenizer.js";

/** Every reason the tokenizer cannot serve this model (empty when it can). */
export function tokenizerMismatches(
  tokenizer: Tokenizer,
  config: ModelConfig,
  chatFormat: string | null,
): string[] {
  const problems: string[] = [];
  const where = `${tokenizer.dir}/tokenizer.json`;
  if (tokenizer.vocabSize > config.vocabSize) {
    problems.push(
      `${where} has ${tokenizer.vocabSize} token ids but the model's vocab_size is ${config.vocabSize}: ` +
        "ids past the embedding would be produced (is it another model's tokenizer?)",
    );
  }
  const named: Array<[string, number | null]> = [
    ["bos", tokenizer.bosTokenId],
    ["eos", tokenizer.eosTokenId],
    ["pad", tokenizer.padTokenId],
  ];
  for (const [role, id] of named) {
    if (id !== null && id >= config.vocabSize) {
      problems.push(`the ${role} token id ${id} is outside the model's vocab_size ${config.vocabSize}`);
    }
  }
  for (const id of tokenizer.stopTokenIds) {
    if (id >= config.vocabSize) {
      problems.push(`the stop token id ${id} is outside the model's vocab_size ${config.vocabSize}`);
    }
  }
  if (chatFormat?.startsWith("openchat") && tokenizer.tokenToId(END_OF_TURN_TOKEN) === undefined) {
    problems.push(`the ${chatFormat} chat format needs the ${END_OF_TURN_TOKEN} token, which ${where} lacks`);
  }
  if (tokenizer.encode("a", { addBos: false }).length === 0) {
    problems.push(`${where} encodes the text "a" to no tokens at all`);
  }
  return problems;
}

/** Throws naming every mismatch (see tokenizerMismatches). */
export function assertTokenizerFitsModel(
  tokenizer: Tokenizer,
  config: ModelConfig,
  chatFormat: string | null,
): void {
  const problems = tokenizerMismatches(tokenizer, config, chatFormat);
  if (problems.length > 0) {
    throw new Error(`the tokenizer does not fit the model: ${problems.join("; ")}`);
  }
}

/**
 * vLLM's POST /tokenize (`{prompt, add_special_tokens}` or `{messages, add_generation_prompt}` ->
 * `{count, max_model_len, tokens}`) and POST /detokenize (`{tokens}` -> `{prompt}`).
 */
import type { FastifyInstance } from "fastify";
import { chatPromptTokenIds } from "../chat-prompt.js";
import { checkModel, type ServerContext } from "../context.js";
import { encodeText } from "../prompt-encoding.js";
import { checkTokenIds } from "../request-params.js";
import { DetokenizeBody, TokenizeChatBody, TokenizePromptBody } from "../schemas.js";
import { validateBody } from "../validate.js";

export function registerTokenize(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/tokenize", async (request) => {
    const raw = request.body;
    const isChat = raw !== null && typeof raw === "object" && "messages" in raw;
    let tokens: number[];
    let returnStrs: boolean;
    if (isChat) {
      const body = validateBody(TokenizeChatBody, raw);
      checkModel(ctx, body.model);
      tokens = await chatPromptTokenIds(ctx, body.messages, {
        addGenerationPrompt: body.add_generation_prompt,
        continueFinalMessage: body.continue_final_message,
      });
      returnStrs = body.return_token_strs ?? false;
    } else {
      const body = validateBody(TokenizePromptBody, raw);
      checkModel(ctx, body.model);
      tokens = await encodeText(ctx, body.prompt, "prompt", { addBos: body.add_special_tokens ?? true });
      returnStrs = body.return_token_strs ?? false;
    }
    // return_token_strs (vLLM): the vocabulary's piece of each token, as convert_ids_to_tokens gives it.
    const strs = returnStrs ? { token_strs: tokens.map((id) => ctx.tokenizer.idToToken(id) ?? "") } : {};
    return { count: tokens.length, max_model_len: ctx.maxModelLen, tokens, ...strs };
  });

  app.post("/detokenize", async (request) => {
    const body = validateBody(DetokenizeBody, request.body);
    checkModel(ctx, body.model);
    checkTokenIds(ctx, body.tokens, "tokens");
    return { prompt: ctx.tokenizer.decode(body.tokens) };
  });
}

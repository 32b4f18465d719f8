/**
 * vLLM's POST /tokenize (`{prompt, add_special_tokens}` or `{messages, add_generation_prompt, tools, ...}` ->
 * `{count, max_model_len, tokens, token_strs?}`) and POST /detokenize (`{tokens}` -> `{prompt}`). A field
 * these routes do not have is a 400 naming it.
 */
import type { FastifyInstance } from "fastify";
import { chatPromptTokenIds } from "../chat-prompt.js";
import { checkModel, type ServerContext } from "../context.js";
import { badRequest } from "../errors.js";
import { encodeText } from "../prompt-encoding.js";
import { checkTokenIds, refuseUnknownFields } from "../request-params.js";
import { DetokenizeBody, TokenizeChatBody, TokenizePromptBody } from "../schemas.js";
import { toolPlanFromBody } from "../tool-calls.js";
import { validateBody } from "../validate.js";

export function registerTokenize(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/tokenize", async (request) => {
    const raw = request.body;
    const isChat = raw !== null && typeof raw === "object" && "messages" in raw;
    let tokens: number[];
    let returnStrs: boolean;
    if (isChat) {
      const body = validateBody(TokenizeChatBody, raw);
      refuseUnknownFields(raw, TokenizeChatBody, "/tokenize (messages)");
      checkModel(ctx, body.model);
      if (body.tools != null && body.tools.length === 0) {
        throw badRequest("tools is an empty list; send at least one tool, or leave tools out", "tools");
      }
      tokens = await chatPromptTokenIds(ctx, body.messages, {
        addGenerationPrompt: body.add_generation_prompt,
        continueFinalMessage: body.continue_final_message,
        addSpecialTokens: body.add_special_tokens,
        tools: toolPlanFromBody({ tools: body.tools })?.tools,
      });
      returnStrs = body.return_token_strs ?? false;
    } else {
      const body = validateBody(TokenizePromptBody, raw);
      refuseUnknownFields(raw, TokenizePromptBody, "/tokenize (prompt)");
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
    refuseUnknownFields(request.body, DetokenizeBody, "/detokenize");
    checkModel(ctx, body.model);
    checkTokenIds(ctx, body.tokens, "tokens");
    return { prompt: ctx.tokenizer.decode(body.tokens) };
  });
}

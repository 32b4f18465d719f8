/**
 * vLLM's POST /tokenize (`{prompt, add_special_tokens}` or `{messages, add_generation_prompt}` ->
 * `{count, max_model_len, tokens}`) and POST /detokenize (`{tokens}` -> `{prompt}`).
 */
import type { FastifyInstance } from "fastify";
import { checkModel, type ServerContext } from "../context.js";
import { badRequest } from "../errors.js";
import { checkTokenIds } from "../request-params.js";
import { DetokenizeBody, TokenizeChatBody, TokenizePromptBody, templateRole } from "../schemas.js";
import { validateBody } from "../validate.js";

export function registerTokenize(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/tokenize", async (request) => {
    const raw = request.body;
    const isChat = raw !== null && typeof raw === "object" && "messages" in raw;
    let tokens: number[];
    if (isChat) {
      const body = validateBody(TokenizeChatBody, raw);
      checkModel(ctx, body.model);
      const messages = body.messages.map((m, i) => {
        if (typeof m.content === "string" || m.content === null)
          return { role: templateRole(m.role), content: m.content ?? "" };
        return {
          role: templateRole(m.role),
          content: m.content
            .map((part, j) => {
              if (part.type !== "text" || typeof part.text !== "string") {
                throw badRequest(
                  "Only text content parts are supported",
                  `messages[${i}].content[${j}].type`,
                );
              }
              return part.text;
            })
            .join(""),
        };
      });
      if (ctx.chatFormatter === null) {
        throw badRequest(
          `The model in ${ctx.modelPath} has no chat template (see --chat-template)`,
          "messages",
        );
      }
      try {
        tokens = ctx.chatFormatter.apply(messages, {
          addGenerationPrompt: body.add_generation_prompt ?? true,
        }).tokenIds;
      } catch (err) {
        throw badRequest((err as Error).message, "messages");
      }
    } else {
      const body = validateBody(TokenizePromptBody, raw);
      checkModel(ctx, body.model);
      tokens = ctx.tokenizer.encode(body.prompt, { addBos: body.add_special_tokens ?? true });
    }
    return { count: tokens.length, max_model_len: ctx.maxModelLen, tokens };
  });

  app.post("/detokenize", async (request) => {
    const body = validateBody(DetokenizeBody, request.body);
    checkModel(ctx, body.model);
    checkTokenIds(ctx, body.tokens, "tokens");
    return { prompt: ctx.tokenizer.decode(body.tokens) };
  });
}

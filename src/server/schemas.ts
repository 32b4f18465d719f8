/**
 * TypeBox schemas of the request bodies (OpenAI's names, plus vLLM's extra sampling fields).
 * Unknown fields are allowed (clients send many), every known field is checked; `null` counts as absent.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { StructuredFields } from "./structured-params.js";
import { ToolFields, ToolMessageFields } from "./tool-calls.js";

/** An optional field that may also be sent as `null`. */
const Opt = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

const Int = (opts: { minimum?: number; maximum?: number } = {}) => Type.Integer(opts);
const TokenId = Int({ minimum: 0 });

/** Sampling fields shared by chat, completions and /generate (snake_case as on the wire). */
export const SamplingFields = {
  n: Opt(Int({ minimum: 1, maximum: 128 })),
  temperature: Opt(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Opt(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  top_k: Opt(Int({ minimum: -1 })),
  min_p: Opt(Type.Number({ minimum: 0, maximum: 1 })),
  repetition_penalty: Opt(Type.Number({ exclusiveMinimum: 0 })),
  presence_penalty: Opt(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Opt(Type.Number({ minimum: -2, maximum: 2 })),
  // Keys are checked as token ids by the engine's validation (which knows the vocabulary).
  logit_bias: Opt(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }))),
  seed: Opt(Int({ minimum: -(2 ** 63), maximum: 2 ** 64 })),
  max_tokens: Opt(Int({ minimum: 1 })),
  min_tokens: Opt(Int({ minimum: 0 })),
  stop: Opt(
    Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: 16 })], {
      description: "a non-empty string or a list of at most 16 non-empty strings",
    }),
  ),
  stop_token_ids: Opt(Type.Array(TokenId)),
  ignore_eos: Opt(Type.Boolean()),
  skip_special_tokens: Opt(Type.Boolean()),
  include_stop_str_in_output: Opt(Type.Boolean()),
  stream: Opt(Type.Boolean()),
  stream_options: Opt(
    Type.Object({ include_usage: Opt(Type.Boolean()), continuous_usage_stats: Opt(Type.Boolean()) }),
  ),
  model: Opt(Type.String()),
  // OpenAI's end-user ids (abuse monitoring): written to the request's log line.
  user: Opt(Type.String()),
  safety_identifier: Opt(Type.String()),
};

/**
 * vLLM's request_id: the response's id is the route's prefix and this (chatcmpl-ID, cmpl-ID, resp_ID), and the
 * engine's requests are named after it (a request_id already running is a 400).
 */
export const RequestIdField = {
  request_id: Opt(
    Type.String({ pattern: "^[\\w.:@/+=-]{1,128}$", description: "1 to 128 letters, digits or ._:@/+=-" }),
  ),
};

/**
 * vLLM's beam search extra parameters (chat and completions): n is the beam width, the search ranks by
 * cum_logprob / length^length_penalty (engine/beam-search.ts).
 */
const BeamSearchFields = {
  use_beam_search: Opt(Type.Boolean()),
  length_penalty: Opt(Type.Number()),
};

/** vLLM's extra prompt fields of chat and completions (request-params.ts applies them). */
const PromptExtraFields = {
  prompt_logprobs: Opt(Int({ minimum: 0, maximum: 20 })),
  truncate_prompt_tokens: Opt(Int({ minimum: -1 })),
  return_token_ids: Opt(Type.Boolean()),
  // Completions (default true): the tokenizer's BOS before a text prompt. Chat (default false): one more BOS
  // on top of the chat format's own, as vLLM adds it.
  add_special_tokens: Opt(Type.Boolean()),
  ...RequestIdField,
};

/** The roles ChatFormatter knows (tokenizer/chat-template.ts). */
export const ChatRoles = ["system", "user", "assistant", "tool"] as const;

/**
 * OpenAI's newer name for the system role (its clients send it for reasoning models); accepted on the
 * wire and given to the chat template as "system".
 */
const WireRoles = [...ChatRoles, "developer"] as const;

/** The template's role for a message's wire role. */
export function templateRole(role: (typeof WireRoles)[number]): (typeof ChatRoles)[number] {
  return role === "developer" ? "system" : role;
}

const ContentPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });

export const ChatMessage = Type.Object(
  {
    role: Type.Union(WireRoles.map((role) => Type.Literal(role))),
    content: Type.Union([Type.String(), Type.Array(ContentPart), Type.Null()], {
      description: "a string or a list of text parts",
    }),
    name: Opt(Type.String()),
    ...ToolMessageFields,
  },
  { description: "a message object { role, content }" },
);

export const ChatCompletionBody = Type.Object({
  ...SamplingFields,
  ...BeamSearchFields,
  messages: Type.Array(ChatMessage, { minItems: 1, description: "a non-empty list of messages" }),
  max_completion_tokens: Opt(Int({ minimum: 1 })),
  logprobs: Opt(Type.Boolean()),
  top_logprobs: Opt(Int({ minimum: 0, maximum: 20 })),
  add_generation_prompt: Opt(Type.Boolean()),
  ...StructuredFields,
  ...ToolFields,
  ...PromptExtraFields,
  continue_final_message: Opt(Type.Boolean()),
  echo: Opt(Type.Boolean()),
  // As on completions: only best_of = n (the n choices are all returned).
  best_of: Opt(Int({ minimum: 1, maximum: 128 })),
});
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

/** A prompt as a string, a list of strings, token ids, or a list of token-id lists. */
export const PromptInput = Type.Union(
  [
    Type.String(),
    Type.Array(Type.String(), { minItems: 1 }),
    Type.Array(TokenId, { minItems: 1 }),
    Type.Array(Type.Array(TokenId, { minItems: 1 }), { minItems: 1 }),
  ],
  { description: "a string, a non-empty list of strings, a list of token ids, or a list of token-id lists" },
);

export const CompletionBody = Type.Object({
  ...SamplingFields,
  ...BeamSearchFields,
  ...StructuredFields,
  ...PromptExtraFields,
  prompt: PromptInput,
  // 0 with echo scores the prompt without generating (vLLM); otherwise at least 1.
  max_tokens: Opt(Int({ minimum: 0 })),
  echo: Opt(Type.Boolean()),
  logprobs: Opt(Int({ minimum: 0, maximum: 20 })),
  best_of: Opt(Int({ minimum: 1, maximum: 128 })),
  suffix: Opt(Type.String()),
});
export type CompletionBody = Static<typeof CompletionBody>;

/** vLLM's simple `POST /generate` (the seed model card's example). */
export const GenerateBody = Type.Object({
  ...SamplingFields,
  ...StructuredFields,
  prompt: Type.String(),
  use_beam_search: Opt(Type.Literal(false)),
  logprobs: Opt(Int({ minimum: 0, maximum: 20 })),
});
export type GenerateBody = Static<typeof GenerateBody>;

export const TokenizePromptBody = Type.Object({
  model: Opt(Type.String()),
  prompt: Type.String(),
  add_special_tokens: Opt(Type.Boolean()),
  return_token_strs: Opt(Type.Boolean()),
});
export type TokenizePromptBody = Static<typeof TokenizePromptBody>;

export const TokenizeChatBody = Type.Object({
  model: Opt(Type.String()),
  messages: Type.Array(ChatMessage, { minItems: 1 }),
  add_generation_prompt: Opt(Type.Boolean()),
  continue_final_message: Opt(Type.Boolean()),
  return_token_strs: Opt(Type.Boolean()),
  add_special_tokens: Opt(Type.Boolean()),
  // The tools the chat format shows the model (counted as chat counts them).
  tools: ToolFields.tools,
});
export type TokenizeChatBody = Static<typeof TokenizeChatBody>;

export const DetokenizeBody = Type.Object({
  model: Opt(Type.String()),
  tokens: Type.Array(TokenId),
});
export type DetokenizeBody = Static<typeof DetokenizeBody>;

export type SamplingBody = Static<ReturnType<typeof Type.Object<typeof SamplingFields>>>;

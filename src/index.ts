/**
 * awq-ts's public library API. Most users need only `LLM`:
 *
 *   import { DEMO_MODEL, LLM } from "awq-ts";
 *   const llm = await LLM.load({ model: DEMO_MODEL, backend: "auto" }); // or model: "demo"
 *   const [out] = await llm.generate("In the beginning", { temperature: 0, maxTokens: 32 });
 *
 * The engine (`Engine`, behind the `EngineClient` request/output API), the tokenizer, chat templates, the model
 * loader, backends and perplexity are exported for front ends and tools built on top.
 */

export type {
  Backend,
  BackendName,
  BackendOptions,
  KvLayout,
  StepBatch,
  StepResult,
} from "./backend/backend.js";
export { BackendUnavailableError } from "./backend/backend.js";
export { type BackendChoice, createBackend } from "./backend/create.js";
export { DEMO_MODEL, DEMO_MODEL_ALIAS } from "./demo-model.js";
export { Engine, type EngineOptions } from "./engine/engine.js";
export {
  choiceParams,
  MAX_LOGPROBS,
  type ResolvedSamplingParams,
  resolveSamplingParams,
} from "./engine/sampling-params.js";
export type {
  EngineClient,
  EngineRequest,
  EngineStats,
  FinishReason,
  RequestOutput,
  SamplingParams,
  TokenLogprob,
} from "./engine/types.js";
export { EngineClosedError, InvalidParamError } from "./engine/types.js";
export { computePerplexity, type PerplexityOptions, type PerplexityResult } from "./eval/perplexity.js";
export { resolveModelPath } from "./hub/resolve.js";
export {
  type CallOptions,
  type GenerateResult,
  LLM,
  type LLMLoadOptions,
  type StreamInput,
  type Usage,
} from "./llm.js";
export { openModel } from "./model/load.js";
export type { ModelConfig, ModelSource } from "./model/types.js";
export { type QuantizeOptions, type QuantizeSummary, quantizeModel } from "./quant/quantize.js";
export { ChatFormatter, type ChatMessage, type ChatRole } from "./tokenizer/chat-template.js";
export { IncrementalDetokenizer } from "./tokenizer/detokenizer.js";
export { type DecodeOptions, type EncodeOptions, Tokenizer } from "./tokenizer/tokenizer.js";
export { VERSION } from "./version.js";

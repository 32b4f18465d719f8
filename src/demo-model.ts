/**
 * The small demo model shipped inside the package (`models/tiny-chat-awq`: a 12.9M-parameter Llama-architecture
 * chat model in AutoAWQ's 4-bit layout, 19 MB), reachable from an installed package without spelling out
 * `node_modules/...`: `LLM.load({ model: DEMO_MODEL })`, or the alias `"demo"` anywhere a model is named.
 */
import { fileURLToPath } from "node:url";

/** The model name that stands for the demo model (when no folder of that name is in the working directory). */
export const DEMO_MODEL_ALIAS = "demo";

/** Absolute path of the demo model folder inside this package. */
// dist/src/demo-model.js -> the package root's models/
export const DEMO_MODEL: string = fileURLToPath(new URL("../../models/tiny-chat-awq", import.meta.url));

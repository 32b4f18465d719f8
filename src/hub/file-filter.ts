/** Which files of a repo awq-ts needs: config, tokenizer and safetensors weights, never pickled weights. */
import { HubError } from "./errors.js";

const NEEDED_FILES = new Set([
  "config.json",
  "generation_config.json",
  "quant_config.json",
  "quantize_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "tokenizer.model",
  "chat_template.json",
  "chat_template.jinja",
]);

const SAFETENSORS = /\.safetensors$/;
const SAFETENSORS_INDEX = /\.safetensors\.index\.json$/;
const OTHER_WEIGHTS = /\.(bin|pt|pth|h5|msgpack|onnx|ckpt|gguf)$/;

/** Picks the files to download from a repo's file list; fails when it has no safetensors weights. */
export function selectNeededFiles(repoId: string, files: readonly string[]): string[] {
  // Only the repo root: subfolders hold other variants (onnx/, original/) that we never read.
  const rootFiles = files.filter((file) => !file.includes("/"));
  const weights = rootFiles.filter((file) => SAFETENSORS.test(file));
  if (weights.length === 0) {
    const otherWeights = files.filter((file) => OTHER_WEIGHTS.test(file));
    if (otherWeights.length > 0) {
      throw new HubError(
        `${repoId} has no safetensors weights, only ${otherWeights.slice(0, 3).join(", ")}` +
          `${otherWeights.length > 3 ? ", ..." : ""}; awq-ts reads only .safetensors (pickled .bin/.pt weights can run code when loaded). ` +
          "Pick an AWQ repo that ships safetensors (for example TheBloke/<model>-AWQ), or convert this one " +
          "(load it with transformers and call save_pretrained(dir, safe_serialization=True)) and pass the folder with --model.",
      );
    }
    throw new HubError(
      `${repoId} has no .safetensors weights at its root (files: ${files.join(", ") || "none"})`,
    );
  }
  if (!rootFiles.includes("config.json")) {
    throw new HubError(
      `${repoId} has no config.json at its root: it does not look like a transformers model repo`,
    );
  }
  return rootFiles.filter(
    (file) => NEEDED_FILES.has(file) || SAFETENSORS.test(file) || SAFETENSORS_INDEX.test(file),
  );
}

/** GET /v1/models and GET /v1/models/:model: the served model under each of its names. */
import type { FastifyInstance } from "fastify";
import { checkModel, type ServerContext } from "../context.js";

export function registerModels(app: FastifyInstance, ctx: ServerContext): void {
  const card = (id: string) => ({
    id,
    object: "model",
    created: Math.floor(ctx.startedAt / 1000),
    owned_by: "awq-ts",
    // The served name, as vLLM reports a hub id: never the folder path on this machine.
    root: ctx.modelNames[0]!,
    parent: null,
    max_model_len: ctx.maxModelLen,
  });
  app.get("/v1/models", async () => ({ object: "list", data: ctx.modelNames.map(card) }));
  app.get("/v1/models/*", async (request) => {
    // Model names may contain slashes (org/name), so the whole rest of the path is the name.
    const name = decodeURIComponent((request.params as Record<string, string>)["*"] ?? "");
    return card(checkModel(ctx, name === "" ? "(empty)" : name));
  });
}

/** GET /health (200 while serving, 503 while draining), GET /version, GET /metrics (Prometheus). */
import type { FastifyInstance } from "fastify";
import { VERSION } from "../../version.js";
import type { ServerContext } from "../context.js";

export function registerHealth(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/health", async (_request, reply) => {
    if (ctx.draining) return reply.code(503).header("retry-after", "1").send({ status: "draining" });
    return reply.code(200).send({ status: "ok" });
  });
  app.get("/version", async () => ({ version: VERSION }));
  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await ctx.metrics.render();
    return reply.type(contentType).send(body);
  });
}

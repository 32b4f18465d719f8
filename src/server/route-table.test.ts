import assert from "node:assert/strict";
import { test } from "node:test";
import { decodePath, RouteTable } from "./route-table.js";

test("methodsFor matches decoded paths, absolute forms, wildcards and parameters", () => {
  const table = new RouteTable();
  table.add("/v1/models", ["GET", "HEAD"]);
  table.add("/v1/models/*", ["GET"]);
  table.add("/assets/:name", ["GET"]);
  table.add("/v1/completions", ["POST"]);
  assert.deepEqual(table.methodsFor("/v1/completions"), ["POST"]);
  assert.deepEqual(table.methodsFor("/v%31/completions?x=1"), ["POST"]);
  assert.deepEqual(table.methodsFor("http://host:80/v1/models"), ["GET", "HEAD"]);
  assert.deepEqual(table.methodsFor("/v1/models/org/name"), ["GET"]);
  assert.deepEqual(table.methodsFor("/assets/app.js"), ["GET"]);
  assert.deepEqual(table.methodsFor("/assets/a/b"), []);
  assert.deepEqual(table.methodsFor("/v1/nothing"), []);
  assert.equal(decodePath("/bad%"), null);
});

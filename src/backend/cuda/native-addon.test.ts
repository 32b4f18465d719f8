import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { addonPath } from "./native-addon.js";

const root = "/pkg";
const built = join(root, "native", "build", "awq_native.node");
const prebuilt = join(root, "prebuilds", `${process.platform}-${process.arch}`, "awq_native.node");

test("addonPath: $AWQ_NATIVE_ADDON first, then the build folder, then the package's prebuilt addon", () => {
  const all = () => true;
  assert.equal(addonPath({ AWQ_NATIVE_ADDON: "/x/addon.node" }, root, all), "/x/addon.node");
  assert.equal(addonPath({}, root, all), built);
  // npm skipped the postinstall: nothing was copied into native/build, the prebuilt addon is used where it lies.
  assert.equal(
    addonPath({}, root, (p) => p === prebuilt),
    prebuilt,
  );
  // Neither: the build folder's path, which the 'not built' error names.
  assert.equal(
    addonPath({}, root, () => false),
    built,
  );
});

// JS values <-> engine structs. Runs on the JS thread; throws Napi::TypeError naming the bad field.
#pragma once
#include <napi.h>

#include "engine/engine.h"

namespace awq_addon {

awq::ModelDims toModelDims(const Napi::Object& o);
awq::RuntimeOptions toRuntimeOptions(const Napi::Object& o);
/** {name, dtype: "F16"|"BF16"|"F32"|"I32", shape: number[], data: TypedArray}; data must stay referenced. */
awq::HostTensor toHostTensor(const Napi::Value& v, const char* field);
/** Every typed array of a StepBatch (src/backend/backend.ts), checked for type and length. */
awq::StepInput toStepInput(const Napi::Object& batch);
Napi::Object fromStepOutput(Napi::Env env, const awq::StepOutput& out, bool tokenLogprobs);
Napi::Object fromMemoryReport(Napi::Env env, const awq::MemoryReport& r);

}  // namespace awq_addon

// JS arguments and object fields -> C++ values, for every wrapper of the addon (the engine's and the
// quantizer's). Each parser throws a Napi::TypeError that names the argument or field and says what it got.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/layer_runner.h"

namespace awq_addon {

/** How a JS value reads in an error message: "undefined", "null", "a string", "3.5", "a Float32Array", ... */
std::string describeValue(const Napi::Value& v);

// --- object fields --------------------------------------------------------------------------------------------

/** A field that must be present (not undefined). */
Napi::Value field(const Napi::Object& o, const char* name);
double numberField(const Napi::Object& o, const char* name);
/** A number that is a whole value in the int range. */
int intField(const Napi::Object& o, const char* name);
/** Absent or undefined: false; otherwise JS truthiness. */
bool flagField(const Napi::Object& o, const char* name);

/** Any length, for typedField's minLength. */
constexpr size_t kAnyLength = static_cast<size_t>(-1);

/** A typed-array field of element type T (int32_t, uint32_t, uint8_t, float) with at least minLength elements. */
template <typename T>
const T* typedField(const Napi::Object& o, const char* name, size_t minLength);

/**
 * A decoder layer's dims from the JS dims object (src/backend/cuda/native-addon.ts NativeModelDims): hiddenSize,
 * numHeads, numKvHeads, headDim, intermediateSize, rmsNormEps, ropeTheta, ropeScalingType, ropeFactor,
 * ropeOriginalMaxPositions.
 */
awq::DecoderLayerDims layerDimsFields(const Napi::Object& dims);

// --- positional arguments -------------------------------------------------------------------------------------

int intArg(const Napi::CallbackInfo& info, size_t i, const char* name);
/** A Float32Array of exactly `length` values (any length when length < 0); nullptr for null/undefined if nullable. */
const float* f32Arg(const Napi::CallbackInfo& info, size_t i, const char* name, long long length, bool nullable);

}  // namespace awq_addon

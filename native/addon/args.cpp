#include "addon/args.h"

#include <cmath>
#include <limits>
#include <type_traits>

namespace awq_addon {

namespace {

template <typename T>
constexpr napi_typedarray_type typedArrayKind() {
  static_assert(std::is_same_v<T, int32_t> || std::is_same_v<T, uint32_t> || std::is_same_v<T, uint8_t> ||
                    std::is_same_v<T, float>,
                "typedField takes int32_t, uint32_t, uint8_t or float");
  if constexpr (std::is_same_v<T, int32_t>) return napi_int32_array;
  if constexpr (std::is_same_v<T, uint32_t>) return napi_uint32_array;
  if constexpr (std::is_same_v<T, uint8_t>) return napi_uint8_array;
  return napi_float32_array;
}

const char* typedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "an Int8Array";
    case napi_uint8_array: return "a Uint8Array";
    case napi_uint8_clamped_array: return "a Uint8ClampedArray";
    case napi_int16_array: return "an Int16Array";
    case napi_uint16_array: return "a Uint16Array";
    case napi_int32_array: return "an Int32Array";
    case napi_uint32_array: return "a Uint32Array";
    case napi_float32_array: return "a Float32Array";
    case napi_float64_array: return "a Float64Array";
    default: return "a typed array";
  }
}

// The whole-number check of intField / intArg; `what` names the field or argument.
int toInt(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), what + " must be a number, got " + describeValue(v));
  const double value = v.As<Napi::Number>().DoubleValue();
  if (!(std::trunc(value) == value && value >= std::numeric_limits<int>::min() &&
        value <= std::numeric_limits<int>::max())) {
    throw Napi::TypeError::New(v.Env(), what + " must be an integer, got " + describeValue(v));
  }
  return static_cast<int>(value);
}

}  // namespace

std::string describeValue(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) {
    const double value = v.As<Napi::Number>().DoubleValue();
    if (std::trunc(value) == value && std::fabs(value) < 1e15) return std::to_string(static_cast<long long>(value));
    return std::to_string(value);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "a string";
  if (v.IsTypedArray()) return typedArrayName(v.As<Napi::TypedArray>().TypedArrayType());
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

Napi::Value field(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) throw Napi::TypeError::New(o.Env(), std::string("missing field ") + name);
  return v;
}

double numberField(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(name) + " must be a number, got " + describeValue(v));
  return v.As<Napi::Number>().DoubleValue();
}

int intField(const Napi::Object& o, const char* name) { return toInt(field(o, name), name); }

bool flagField(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  return !v.IsUndefined() && v.ToBoolean().Value();
}

template <typename T>
const T* typedField(const Napi::Object& o, const char* name, size_t minLength) {
  Napi::Value v = field(o, name);
  constexpr napi_typedarray_type kind = typedArrayKind<T>();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kind) {
    throw Napi::TypeError::New(o.Env(), std::string(name) + " must be " + typedArrayName(kind) + ", got " +
                                            describeValue(v));
  }
  auto array = v.As<Napi::TypedArrayOf<T>>();
  if (minLength != kAnyLength && array.ElementLength() < minLength) {
    throw Napi::TypeError::New(o.Env(), std::string(name) + " has " + std::to_string(array.ElementLength()) +
                                            " entries, expected " + std::to_string(minLength));
  }
  return array.Data();
}

template const int32_t* typedField<int32_t>(const Napi::Object&, const char*, size_t);
template const uint32_t* typedField<uint32_t>(const Napi::Object&, const char*, size_t);
template const uint8_t* typedField<uint8_t>(const Napi::Object&, const char*, size_t);
template const float* typedField<float>(const Napi::Object&, const char*, size_t);

awq::DecoderLayerDims layerDimsFields(const Napi::Object& dims) {
  awq::DecoderLayerDims layer;
  layer.hidden = intField(dims, "hiddenSize");
  layer.numHeads = intField(dims, "numHeads");
  layer.numKvHeads = intField(dims, "numKvHeads");
  layer.headDim = intField(dims, "headDim");
  layer.intermediate = intField(dims, "intermediateSize");
  layer.rmsEps = static_cast<float>(numberField(dims, "rmsNormEps"));
  layer.rope.theta = static_cast<float>(numberField(dims, "ropeTheta"));
  layer.rope.scaling = intField(dims, "ropeScalingType");
  layer.rope.factor = static_cast<float>(numberField(dims, "ropeFactor"));
  layer.rope.originalMaxPositions = intField(dims, "ropeOriginalMaxPositions");
  return layer;
}

int intArg(const Napi::CallbackInfo& info, size_t i, const char* name) { return toInt(info[i], name); }

const float* f32Arg(const Napi::CallbackInfo& info, size_t i, const char* name, long long length, bool nullable) {
  if (nullable && (info[i].IsNull() || info[i].IsUndefined())) return nullptr;
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array" + (nullable ? " or null" : "") +
                                               ", got " + describeValue(info[i]));
  }
  auto array = info[i].As<Napi::Float32Array>();
  if (length >= 0 && static_cast<long long>(array.ElementLength()) != length) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " has " + std::to_string(array.ElementLength()) +
                                               " values, expected " + std::to_string(length));
  }
  return array.Data();
}

}  // namespace awq_addon

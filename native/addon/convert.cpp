#include "convert.h"

#include <cstring>
#include <string>

namespace awq_addon {
namespace {

Napi::Value field(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) throw Napi::TypeError::New(o.Env(), std::string("missing field ") + name);
  return v;
}

double number(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

template <typename T, napi_typedarray_type Kind>
const T* typed(const Napi::Object& o, const char* name, size_t expected, const char* typeName) {
  Napi::Value v = field(o, name);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Kind) {
    throw Napi::TypeError::New(o.Env(), std::string(name) + " must be a " + typeName);
  }
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  if (expected != static_cast<size_t>(-1) && arr.ElementLength() < expected) {
    throw Napi::TypeError::New(o.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) +
                                            " entries, expected " + std::to_string(expected));
  }
  return arr.Data();
}

constexpr size_t kAny = static_cast<size_t>(-1);

const int32_t* i32(const Napi::Object& o, const char* name, size_t n) {
  return typed<int32_t, napi_int32_array>(o, name, n, "Int32Array");
}
const float* f32(const Napi::Object& o, const char* name, size_t n) {
  return typed<float, napi_float32_array>(o, name, n, "Float32Array");
}

}  // namespace

awq::ModelDims toModelDims(const Napi::Object& o) {
  awq::ModelDims d;
  d.hidden = static_cast<int>(number(o, "hiddenSize"));
  d.intermediate = static_cast<int>(number(o, "intermediateSize"));
  d.numLayers = static_cast<int>(number(o, "numLayers"));
  d.numHeads = static_cast<int>(number(o, "numHeads"));
  d.numKvHeads = static_cast<int>(number(o, "numKvHeads"));
  d.headDim = static_cast<int>(number(o, "headDim"));
  d.vocab = static_cast<int>(number(o, "vocabSize"));
  d.rmsEps = static_cast<float>(number(o, "rmsNormEps"));
  d.rope.theta = static_cast<float>(number(o, "ropeTheta"));
  d.rope.scaling = static_cast<int>(number(o, "ropeScalingType"));
  d.rope.factor = static_cast<float>(number(o, "ropeFactor"));
  d.rope.originalMaxPositions = static_cast<int>(number(o, "ropeOriginalMaxPositions"));
  d.tiedEmbeddings = field(o, "tieWordEmbeddings").ToBoolean().Value();
  d.groupSize = static_cast<int>(number(o, "groupSize"));
  return d;
}

awq::RuntimeOptions toRuntimeOptions(const Napi::Object& o) {
  awq::RuntimeOptions r;
  r.maxNumSeqs = static_cast<int>(number(o, "maxNumSeqs"));
  r.maxNumBatchedTokens = static_cast<int>(number(o, "maxNumBatchedTokens"));
  r.maxModelLen = static_cast<int>(number(o, "maxModelLen"));
  r.blockSize = static_cast<int>(number(o, "blockSize"));
  r.numBlocks = static_cast<int>(number(o, "numBlocks"));
  r.gpuMemoryUtilization = number(o, "gpuMemoryUtilization");
  return r;
}

awq::HostTensor toHostTensor(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a tensor object");
  Napi::Object o = v.As<Napi::Object>();
  awq::HostTensor t;
  t.name = field(o, "name").ToString().Utf8Value();
  try {
    t.dtype = awq::parseHostDType(field(o, "dtype").ToString().Utf8Value());
  } catch (const std::exception& e) {
    throw Napi::TypeError::New(v.Env(), "tensor \"" + t.name + "\": " + e.what());
  }
  Napi::Value shape = field(o, "shape");
  if (!shape.IsArray()) throw Napi::TypeError::New(v.Env(), "tensor \"" + t.name + "\": shape must be an array");
  Napi::Array arr = shape.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) t.shape.push_back(arr.Get(i).As<Napi::Number>().Int64Value());
  Napi::Value data = field(o, "data");
  if (!data.IsTypedArray()) throw Napi::TypeError::New(v.Env(), "tensor \"" + t.name + "\": data must be a TypedArray");
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  Napi::ArrayBuffer buffer = ta.ArrayBuffer();
  t.data = static_cast<const uint8_t*>(buffer.Data()) + ta.ByteOffset();
  t.bytes = ta.ByteLength();
  return t;
}

awq::StepInput toStepInput(const Napi::Object& b) {
  awq::StepInput in;
  in.numSeqs = static_cast<int>(number(b, "numSeqs"));
  in.maxBlocksPerSeq = static_cast<int>(number(b, "maxBlocksPerSeq"));
  const size_t S = static_cast<size_t>(in.numSeqs);
  Napi::Value tokenIds = field(b, "tokenIds");
  if (!tokenIds.IsTypedArray()) throw Napi::TypeError::New(b.Env(), "tokenIds must be an Int32Array");
  in.numTokens = static_cast<int>(tokenIds.As<Napi::TypedArray>().ElementLength());
  const size_t T = static_cast<size_t>(in.numTokens);
  in.tokenIds = i32(b, "tokenIds", T);
  in.positions = i32(b, "positions", T);
  in.queryStarts = i32(b, "queryStarts", S + 1);
  in.contextLens = i32(b, "contextLens", S);
  in.blockTables = i32(b, "blockTables", S * in.maxBlocksPerSeq);
  in.slotMapping = i32(b, "slotMapping", T);
  in.sample = typed<uint8_t, napi_uint8_array>(b, "sample", S, "Uint8Array");
  Napi::Value tl = b.Get("tokenLogprobs");
  in.tokenLogprobs = !tl.IsUndefined() && tl.ToBoolean().Value();
  Napi::Value rl = b.Get("returnLogits");
  in.returnLogits = !rl.IsUndefined() && rl.ToBoolean().Value();
  Napi::Value sv = field(b, "sampling");
  if (!sv.IsObject()) throw Napi::TypeError::New(b.Env(), "sampling must be an object");
  Napi::Object s = sv.As<Napi::Object>();
  in.temperature = f32(s, "temperature", S);
  in.topP = f32(s, "topP", S);
  in.topK = i32(s, "topK", S);
  in.minP = f32(s, "minP", S);
  in.repetitionPenalty = f32(s, "repetitionPenalty", S);
  in.presencePenalty = f32(s, "presencePenalty", S);
  in.frequencyPenalty = f32(s, "frequencyPenalty", S);
  in.seed = typed<uint32_t, napi_uint32_array>(s, "seed", S, "Uint32Array");
  in.outputIndex = i32(s, "outputIndex", S);
  in.logprobs = i32(s, "logprobs", S);
  in.promptStarts = i32(s, "promptStarts", S + 1);
  in.outputStarts = i32(s, "outputStarts", S + 1);
  in.biasStarts = i32(s, "biasStarts", S + 1);
  in.promptTokens = i32(s, "promptTokens", static_cast<size_t>(in.promptStarts[S]));
  in.outputTokens = i32(s, "outputTokens", static_cast<size_t>(in.outputStarts[S]));
  in.biasTokens = i32(s, "biasTokens", static_cast<size_t>(in.biasStarts[S]));
  in.biasValues = f32(s, "biasValues", static_cast<size_t>(in.biasStarts[S]));
  if (!s.Get("maskRow").IsUndefined()) {
    in.maskWords = static_cast<int>(number(s, "maskWords"));
    in.maskRow = i32(s, "maskRow", S);
    in.maskBeforeLogprobs = typed<uint8_t, napi_uint8_array>(s, "maskBeforeLogprobs", S, "Uint8Array");
    Napi::Value tm = field(s, "tokenMask");
    const size_t words = tm.IsTypedArray() ? tm.As<Napi::TypedArray>().ElementLength() : 0;
    in.numMaskRows = in.maskWords > 0 ? static_cast<int>(words / static_cast<size_t>(in.maskWords)) : 0;
    in.tokenMask = i32(s, "tokenMask", static_cast<size_t>(in.numMaskRows) * in.maskWords);
    for (size_t i = 0; i < S; i++) {
      if (in.maskRow[i] < -1 || in.maskRow[i] >= in.numMaskRows) {
        throw Napi::RangeError::New(b.Env(), "maskRow[" + std::to_string(i) + "] = " + std::to_string(in.maskRow[i]) +
                                                 " is outside the " + std::to_string(in.numMaskRows) + " mask rows");
      }
    }
  }
  return in;
}

namespace {

template <typename T, typename Array>
Array copyOut(Napi::Env env, const std::vector<T>& v) {
  Array arr = Array::New(env, v.size());
  if (!v.empty()) std::memcpy(arr.Data(), v.data(), v.size() * sizeof(T));
  return arr;
}

}  // namespace

Napi::Object fromStepOutput(Napi::Env env, const awq::StepOutput& out, bool tokenLogprobs) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("tokenIds", copyOut<int32_t, Napi::Int32Array>(env, out.tokenIds));
  o.Set("logprobs", copyOut<float, Napi::Float32Array>(env, out.logprobs));
  o.Set("topCounts", copyOut<int32_t, Napi::Int32Array>(env, out.topCounts));
  o.Set("topIds", copyOut<int32_t, Napi::Int32Array>(env, out.topIds));
  o.Set("topLogprobs", copyOut<float, Napi::Float32Array>(env, out.topLogprobs));
  o.Set("maxTop", Napi::Number::New(env, out.maxTop));
  o.Set("gpuMs", Napi::Number::New(env, out.gpuMs));
  if (tokenLogprobs) o.Set("tokenLogprobs", copyOut<float, Napi::Float32Array>(env, out.tokenLogprobs));
  if (!out.logits.empty()) o.Set("logits", copyOut<float, Napi::Float32Array>(env, out.logits));
  return o;
}

Napi::Object fromMemoryReport(Napi::Env env, const awq::MemoryReport& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("numBlocks", Napi::Number::New(env, r.numBlocks));
  o.Set("blockSize", Napi::Number::New(env, r.blockSize));
  o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(r.weightBytes)));
  o.Set("workspaceBytes", Napi::Number::New(env, static_cast<double>(r.workspaceBytes)));
  o.Set("kvBytes", Napi::Number::New(env, static_cast<double>(r.kvBytes)));
  o.Set("totalBytes", Napi::Number::New(env, static_cast<double>(r.totalBytes)));
  o.Set("freeBytesAfter", Napi::Number::New(env, static_cast<double>(r.freeBytesAfter)));
  return o;
}

}  // namespace awq_addon

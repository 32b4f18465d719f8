#include "addon/convert.h"

#include <cstring>
#include <string>

#include "addon/args.h"

namespace awq_addon {

awq::ModelDims toModelDims(const Napi::Object& o) {
  awq::ModelDims d;
  static_cast<awq::DecoderLayerDims&>(d) = layerDimsFields(o);
  d.numLayers = intField(o, "numLayers");
  d.vocab = intField(o, "vocabSize");
  d.tiedEmbeddings = field(o, "tieWordEmbeddings").ToBoolean().Value();
  d.groupSize = intField(o, "groupSize");
  return d;
}

awq::RuntimeOptions toRuntimeOptions(const Napi::Object& o) {
  awq::RuntimeOptions r;
  r.maxNumSeqs = intField(o, "maxNumSeqs");
  r.maxNumBatchedTokens = intField(o, "maxNumBatchedTokens");
  r.maxModelLen = intField(o, "maxModelLen");
  r.blockSize = intField(o, "blockSize");
  r.numBlocks = intField(o, "numBlocks");
  r.gpuMemoryUtilization = numberField(o, "gpuMemoryUtilization");
  // vLLM's --kv-cache-dtype; absent = auto (fp16).
  const Napi::Value kv = o.Get("kvCacheDtype");
  if (!kv.IsUndefined()) {
    const std::string name = kv.IsString() ? kv.As<Napi::String>().Utf8Value() : "";
    if (name == "auto") {
      r.kvCacheDtype = awqk::KvCacheDtype::Fp16;
    } else if (name == "fp8" || name == "fp8_e4m3") {
      r.kvCacheDtype = awqk::KvCacheDtype::Fp8E4m3;
    } else {
      throw Napi::TypeError::New(o.Env(), "kvCacheDtype must be \"auto\", \"fp8\" or \"fp8_e4m3\", got " +
                                              (kv.IsString() ? "\"" + name + "\"" : describeValue(kv)));
    }
  }
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
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value size = arr.Get(i);
    if (!size.IsNumber()) {
      throw Napi::TypeError::New(v.Env(), "tensor \"" + t.name + "\": shape[" + std::to_string(i) +
                                              "] must be a number, got " + describeValue(size));
    }
    t.shape.push_back(size.As<Napi::Number>().Int64Value());
  }
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
  in.numSeqs = intField(b, "numSeqs");
  in.maxBlocksPerSeq = intField(b, "maxBlocksPerSeq");
  if (in.numSeqs <= 0) throw Napi::RangeError::New(b.Env(), "numSeqs must be positive, got " + std::to_string(in.numSeqs));
  if (in.maxBlocksPerSeq < 0) {
    throw Napi::RangeError::New(b.Env(), "maxBlocksPerSeq must be >= 0, got " + std::to_string(in.maxBlocksPerSeq));
  }
  const size_t numSeqs = static_cast<size_t>(in.numSeqs);
  Napi::Value tokenIds = field(b, "tokenIds");
  if (!tokenIds.IsTypedArray()) throw Napi::TypeError::New(b.Env(), "tokenIds must be an Int32Array");
  in.numTokens = static_cast<int>(tokenIds.As<Napi::TypedArray>().ElementLength());
  const size_t numTokens = static_cast<size_t>(in.numTokens);
  in.tokenIds = typedField<int32_t>(b, "tokenIds", numTokens);
  if (!b.Get("prevTokenRows").IsUndefined()) in.prevTokenRows = typedField<int32_t>(b, "prevTokenRows", numTokens);
  in.positions = typedField<int32_t>(b, "positions", numTokens);
  in.queryStarts = typedField<int32_t>(b, "queryStarts", numSeqs + 1);
  in.contextLens = typedField<int32_t>(b, "contextLens", numSeqs);
  in.blockTables = typedField<int32_t>(b, "blockTables", numSeqs * in.maxBlocksPerSeq);
  in.slotMapping = typedField<int32_t>(b, "slotMapping", numTokens);
  in.sample = typedField<uint8_t>(b, "sample", numSeqs);
  in.tokenLogprobs = flagField(b, "tokenLogprobs");
  in.tokenTopLogprobs = b.Get("tokenTopLogprobs").IsUndefined() ? 0 : intField(b, "tokenTopLogprobs");
  in.returnLogits = flagField(b, "returnLogits");
  Napi::Value samplingValue = field(b, "sampling");
  if (!samplingValue.IsObject()) {
    throw Napi::TypeError::New(b.Env(), "sampling must be an object, got " + describeValue(samplingValue));
  }
  Napi::Object s = samplingValue.As<Napi::Object>();
  in.temperature = typedField<float>(s, "temperature", numSeqs);
  in.topP = typedField<float>(s, "topP", numSeqs);
  in.topK = typedField<int32_t>(s, "topK", numSeqs);
  in.minP = typedField<float>(s, "minP", numSeqs);
  in.repetitionPenalty = typedField<float>(s, "repetitionPenalty", numSeqs);
  in.presencePenalty = typedField<float>(s, "presencePenalty", numSeqs);
  in.frequencyPenalty = typedField<float>(s, "frequencyPenalty", numSeqs);
  in.seed = typedField<uint32_t>(s, "seed", numSeqs);
  in.outputIndex = typedField<int32_t>(s, "outputIndex", numSeqs);
  in.logprobs = typedField<int32_t>(s, "logprobs", numSeqs);
  in.promptStarts = typedField<int32_t>(s, "promptStarts", numSeqs + 1);
  in.outputStarts = typedField<int32_t>(s, "outputStarts", numSeqs + 1);
  in.biasStarts = typedField<int32_t>(s, "biasStarts", numSeqs + 1);
  in.promptTokens = typedField<int32_t>(s, "promptTokens", static_cast<size_t>(in.promptStarts[numSeqs]));
  in.outputTokens = typedField<int32_t>(s, "outputTokens", static_cast<size_t>(in.outputStarts[numSeqs]));
  in.biasTokens = typedField<int32_t>(s, "biasTokens", static_cast<size_t>(in.biasStarts[numSeqs]));
  in.biasValues = typedField<float>(s, "biasValues", static_cast<size_t>(in.biasStarts[numSeqs]));
  if (!s.Get("maskRow").IsUndefined()) {
    in.maskWords = intField(s, "maskWords");
    in.maskRow = typedField<int32_t>(s, "maskRow", numSeqs);
    in.maskBeforeLogprobs = typedField<uint8_t>(s, "maskBeforeLogprobs", numSeqs);
    Napi::Value tokenMask = field(s, "tokenMask");
    const size_t words = tokenMask.IsTypedArray() ? tokenMask.As<Napi::TypedArray>().ElementLength() : 0;
    in.numMaskRows = in.maskWords > 0 ? static_cast<int>(words / static_cast<size_t>(in.maskWords)) : 0;
    in.tokenMask = typedField<int32_t>(s, "tokenMask", static_cast<size_t>(in.numMaskRows) * in.maskWords);
    for (size_t i = 0; i < numSeqs; i++) {
      if (in.maskRow[i] < -1 || in.maskRow[i] >= in.numMaskRows) {
        throw Napi::RangeError::New(b.Env(), "maskRow[" + std::to_string(i) + "] = " + std::to_string(in.maskRow[i]) +
                                                 " is outside the " + std::to_string(in.numMaskRows) + " mask rows");
      }
    }
  }
  return in;
}

namespace {

template <typename numTokens, typename Array>
Array copyOut(Napi::Env env, const std::vector<numTokens>& v) {
  Array arr = Array::New(env, v.size());
  if (!v.empty()) std::memcpy(arr.Data(), v.data(), v.size() * sizeof(numTokens));
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
  if (!out.tokenRanks.empty()) {
    Napi::Object top = Napi::Object::New(env);
    top.Set("ids", copyOut<int32_t, Napi::Int32Array>(env, out.tokenTopIds));
    top.Set("logprobs", copyOut<float, Napi::Float32Array>(env, out.tokenTopLogprobs));
    top.Set("ranks", copyOut<int32_t, Napi::Int32Array>(env, out.tokenRanks));
    o.Set("tokenTop", top);
  }
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
  o.Set("kvElementBytes", Napi::Number::New(env, r.kvElementBytes));
  o.Set("totalBytes", Napi::Number::New(env, static_cast<double>(r.totalBytes)));
  o.Set("freeBytesAfter", Napi::Number::New(env, static_cast<double>(r.freeBytesAfter)));
  return o;
}

}  // namespace awq_addon

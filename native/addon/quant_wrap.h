// The QuantContext class of the awq_native module (quant_wrap.cpp): the CUDA side of `awq quantize --backend cuda`.
#pragma once
#include <napi.h>

namespace awq_addon {

Napi::Function DefineQuantContext(Napi::Env env);

}  // namespace awq_addon

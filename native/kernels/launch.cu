// PDL switch (launch.h) and the environment switches (internal.h).
#include <cstdlib>
#include <cstring>

#include "internal.h"
#include "launch.h"

namespace awqk {
namespace {
int g_pdl = -1;  // -1: not decided yet
}

bool pdl_enabled() {
  if (g_pdl < 0) {
    int dev = 0, major = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    const char* env = std::getenv("AWQ_PDL");
    g_pdl = major >= 9 && !(env != nullptr && std::strcmp(env, "0") == 0) ? 1 : 0;
  }
  return g_pdl == 1;
}

bool env_flag(const char* name, bool dflt) {
  const char* e = std::getenv(name);
  if (e == nullptr || e[0] == '\0') return dflt;
  return e[0] != '0';
}

void set_pdl(bool on) {
  g_pdl = -1;
  if (!on) g_pdl = 0;
  else if (pdl_enabled()) g_pdl = 1;
}

}  // namespace awqk

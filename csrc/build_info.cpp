// build_info() from the definitions CMakeLists.txt sets; the CUDA build's cuda_device_count is in
// cuda/device_info.cu.
#include "build_info.h"

namespace nmmfast {

BuildInfo build_info() {
#ifdef NMMFAST_WITH_CUDA
  return {NMMFAST_VERSION, true, NMMFAST_CUDA_ARCHS, NMMFAST_CUDA_COMPILER_VERSION};
#else
  return {NMMFAST_VERSION, false, "", ""};
#endif
}

#ifndef NMMFAST_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace nmmfast

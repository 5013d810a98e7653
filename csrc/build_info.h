// What the compiled core was built with (for build_info() / nmmfast.info()) and what the CUDA
// runtime sees now.
#pragma once

namespace nmmfast {

struct BuildInfo {
  const char* version;             // the package version, from CMake's project()
  bool cuda_compiled;              // the CUDA kernels are in this build
  const char* cuda_architectures;  // comma-separated CMAKE_CUDA_ARCHITECTURES ("" without CUDA)
  const char* cuda_compiler;       // nvcc version ("" without CUDA)
};

BuildInfo build_info();
// GPUs the CUDA runtime sees now: 0 without a driver or in a build without CUDA; never throws.
int cuda_device_count();

}  // namespace nmmfast

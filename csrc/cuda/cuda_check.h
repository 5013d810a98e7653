// Error checking and device selection shared by the CUDA op files.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define NMM_CUDA_CHECK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t nmm_status = (expr);                                                \
    if (nmm_status != cudaSuccess)                                                        \
      throw std::runtime_error(std::string("nmmfast CUDA error: ") + #expr + ": " +       \
                               cudaGetErrorString(nmm_status));                           \
  } while (0)

namespace nmmfast {

// Makes `device` current for the lifetime of the guard and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    NMM_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) NMM_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace nmmfast

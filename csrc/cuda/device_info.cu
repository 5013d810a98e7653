// Runtime GPU discovery for build_info / nmmfast.info(); never throws, so a machine without a
// driver simply reports zero devices.
#include <cuda_runtime.h>

#include "build_info.h"

namespace nmmfast {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

}  // namespace nmmfast

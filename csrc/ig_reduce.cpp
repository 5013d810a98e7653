// Device dispatch for ig_reduce.
#include "ig_reduce.h"

#include <stdexcept>

namespace nmmfast {

void ig_reduce(const IgReduceParams& params) {
  if (params.device < 0) return ig_reduce_cpu(params);
#ifdef NMMFAST_WITH_CUDA
  return ig_reduce_cuda(params);
#else
  throw std::runtime_error(
      "nmmfast.kernels.ig_reduce: got CUDA memory but nmmfast was built without CUDA kernels; "
      "reinstall with nvcc on PATH (NMMFAST_CUDA=ON) or pass CPU arrays");
#endif
}

}  // namespace nmmfast

// Device dispatch for ig_scale.
#include "ig_scale.h"

#include <stdexcept>

namespace nmmfast {

void ig_scale(const IgScaleParams& params) {
  if (params.n_samples == 0 || params.n_steps == 0 || params.t_max == 0) return;
  if (params.device < 0) return ig_scale_cpu(params);
#ifdef NMMFAST_WITH_CUDA
  return ig_scale_cuda(params);
#else
  throw std::runtime_error(
      "nmmfast.kernels.ig_scale: got CUDA memory but nmmfast was built without CUDA kernels; "
      "reinstall with nvcc on PATH (NMMFAST_CUDA=ON) or pass CPU arrays");
#endif
}

}  // namespace nmmfast

// Device dispatch for ig_scale: checks the params struct, then runs the host or the CUDA kernel.
#include "ig_scale.h"

#include <stdexcept>

#include "common/check.h"

namespace nmmfast {

void ig_scale(const IgScaleParams& p) {
  constexpr const char* op = "ig_scale";
  NMM_CHECK_NONNEGATIVE(op, p.n_samples, p.n_steps, p.t_max, p.joints, p.channels);
  NMM_CHECK_DTYPE(op, p.pose_dtype, DType::Float32, DType::Float64);
  NMM_CHECK_DTYPE(op, p.out_dtype, DType::Float32, DType::Float64, DType::Float16, DType::BFloat16);
  if (p.n_samples == 0 || p.n_steps == 0 || p.t_max == 0) return;
  NMM_CHECK(p.offsets && p.nonfinite, op, "offsets [N + 1] and nonfinite [1] must not be null");
  if (p.device < 0) return ig_scale_cpu(p);
#ifdef NMMFAST_WITH_CUDA
  return ig_scale_cuda(p);
#else
  throw std::runtime_error(
      "nmmfast.kernels.ig_scale: got CUDA memory but nmmfast was built without CUDA kernels; "
      "reinstall with nvcc on PATH (NMMFAST_CUDA=ON) or pass CPU arrays");
#endif
}

}  // namespace nmmfast

// Device dispatch for ig_reduce: checks the params struct, then runs the host or the CUDA kernel.
#include "ig_reduce.h"

#include <stdexcept>

#include "common/check.h"

namespace nmmfast {

void ig_reduce(const IgReduceParams& p) {
  constexpr const char* op = "ig_reduce";
  NMM_CHECK_NONNEGATIVE(op, p.n_samples, p.total_frames, p.n_steps, p.t_max, p.joints,
                        p.channels, p.n_regions);
  NMM_CHECK_DTYPE(op, p.pose_dtype, DType::Float32, DType::Float64);
  NMM_CHECK_DTYPE(op, p.grad_dtype, DType::Float32, DType::Float64, DType::Float16, DType::BFloat16);
  NMM_CHECK(p.n_samples == 0 || (p.offsets && p.nonfinite), op,
            "offsets [N + 1] and nonfinite [1] must not be null");
  if (p.device < 0) return ig_reduce_cpu(p);
#ifdef NMMFAST_WITH_CUDA
  return ig_reduce_cuda(p);
#else
  throw std::runtime_error(
      "nmmfast.kernels.ig_reduce: got CUDA memory but nmmfast was built without CUDA kernels; "
      "reinstall with nvcc on PATH (NMMFAST_CUDA=ON) or pass CPU arrays");
#endif
}

}  // namespace nmmfast

// CUDA implementation of ig_scale: grid.y walks rows (sample, step), grid.x the frames x features of
// a row, so consecutive threads write consecutive output elements.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "ig_scale.h"

namespace nmmfast {
namespace {

template <typename pose_t, typename out_t>
__global__ void scale_kernel(IgScaleParams p) {
  const int64_t frame_size = p.joints * p.channels;
  const int64_t row_size = p.t_max * frame_size;
  const auto* packed = static_cast<const pose_t*>(p.packed);
  const auto* alphas = static_cast<const pose_t*>(p.alphas);
  const auto* baseline = static_cast<const pose_t*>(p.baseline);
  auto* scaled = static_cast<out_t*>(p.scaled);
  const int64_t rows = p.n_samples * p.n_steps;
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const int64_t n = row / p.n_steps;
    const pose_t alpha = alphas[p.alphas_per_sample ? row : row % p.n_steps];
    const int64_t start = p.offsets[n], length = p.offsets[n + 1] - start;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < row_size;
         e += int64_t(gridDim.x) * blockDim.x) {
      const int64_t t = e / frame_size, i = e - t * frame_size;
      const int64_t frame = start + (t < length ? t : length - 1);
      const pose_t x = packed[frame * frame_size + i];
      pose_t v;
      if (p.baseline_kind == BaselineKind::Zero) {
        v = alpha * x;
      } else {
        const pose_t b = baseline[(p.baseline_kind == BaselineKind::Packed ? frame * frame_size : 0) + i];
        v = b + alpha * (x - b);
      }
      if (!isfinite(v)) *p.nonfinite = 1;
      store(scaled + row * row_size + e, v);
      if (i == 0) p.mask[row * p.t_max + t] = t < length;
    }
  }
}

}  // namespace

void ig_scale_cuda(const IgScaleParams& p) {
  DeviceGuard guard(p.device);
  const auto stream = static_cast<cudaStream_t>(p.stream);
  const int threads = 256;
  const int64_t row_size = p.t_max * p.joints * p.channels;
  const int64_t rows = p.n_samples * p.n_steps;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((row_size + threads - 1) / threads, 1024)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  NMM_DISPATCH_POSE(p.pose_dtype, pose_t, [&] {
    NMM_DISPATCH_STORAGE(p.out_dtype, out_t, [&] {
      scale_kernel<pose_t, out_t><<<grid, threads, 0, stream>>>(p);
    });
  });
  NMM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace nmmfast

// CUDA implementation of ig_reduce in three deterministic launches: (1) one thread per packed
// element sums its m weighted gradients (the only pass over the gradients) and writes the
// attribution; (2) one block per (sample, joint) reduces that joint's attributions; (3) one thread
// per sample sums joints into regions and the completeness total.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "ig_reduce.h"

namespace nmmfast {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t sample_of_frame(const int64_t* offsets, int64_t n_samples, int64_t frame) {
  int64_t lo = 0, hi = n_samples - 1;  // largest n with offsets[n] <= frame
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= frame) lo = mid; else hi = mid - 1;
  }
  return lo;
}

template <typename pose_t, typename grad_t>
__global__ void attribution_kernel(IgReduceParams p, int64_t total_elements) {
  const int64_t frame_size = p.joints * p.channels;
  const auto* grads = static_cast<const grad_t*>(p.grads);
  const auto* packed = static_cast<const pose_t*>(p.packed);
  const auto* weights = static_cast<const pose_t*>(p.weights);
  const auto* baseline = static_cast<const pose_t*>(p.baseline);
  auto* attributions = static_cast<pose_t*>(p.attributions);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total_elements;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t frame = e / frame_size, i = e - frame * frame_size;
    const int64_t n = sample_of_frame(p.offsets, p.n_samples, frame);
    const int64_t t = frame - p.offsets[n];
    const grad_t* g = grads + (n * p.n_steps * p.t_max + t) * frame_size + i;
    const int64_t row_stride = p.t_max * frame_size;
    pose_t acc = 0;
    for (int64_t k = 0; k < p.n_steps; ++k)
      acc += weights[p.weights_per_sample ? n * p.n_steps + k : k] * load<pose_t>(g + k * row_stride);
    pose_t delta = packed[e];
    if (p.baseline_kind == BaselineKind::Shared) delta -= baseline[i];
    if (p.baseline_kind == BaselineKind::Packed) delta -= baseline[e];
    const pose_t attr = delta * acc;
    if (!isfinite(attr)) *p.nonfinite = 1;
    attributions[e] = attr;
  }
}

template <typename pose_t>
__global__ void joint_sum_kernel(IgReduceParams p) {
  __shared__ pose_t shared_abs[kThreads];
  __shared__ pose_t shared_signed[kThreads];
  const int64_t n = blockIdx.x / p.joints, j = blockIdx.x % p.joints;
  const int64_t frame_size = p.joints * p.channels;
  const int64_t start = p.offsets[n], count = (p.offsets[n + 1] - start) * p.channels;
  const auto* attributions = static_cast<const pose_t*>(p.attributions);
  pose_t sum_abs = 0, sum_signed = 0;
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
    const int64_t t = e / p.channels, c = e - t * p.channels;
    const pose_t a = attributions[(start + t) * frame_size + j * p.channels + c];
    sum_abs += a < 0 ? -a : a;
    sum_signed += a;
  }
  shared_abs[threadIdx.x] = sum_abs;
  shared_signed[threadIdx.x] = sum_signed;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      shared_abs[threadIdx.x] += shared_abs[threadIdx.x + stride];
      shared_signed[threadIdx.x] += shared_signed[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    static_cast<pose_t*>(p.joint_abs)[n * p.joints + j] = shared_abs[0];
    static_cast<pose_t*>(p.joint_signed)[n * p.joints + j] = shared_signed[0];
  }
}

template <typename pose_t>
__global__ void region_sum_kernel(IgReduceParams p) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= p.n_samples) return;
  const auto* joint_abs = static_cast<const pose_t*>(p.joint_abs) + n * p.joints;
  const auto* joint_signed = static_cast<const pose_t*>(p.joint_signed) + n * p.joints;
  auto* region_abs = static_cast<pose_t*>(p.region_abs) + n * p.n_regions;
  auto* region_signed = static_cast<pose_t*>(p.region_signed) + n * p.n_regions;
  for (int64_t r = 0; r < p.n_regions; ++r) region_abs[r] = region_signed[r] = 0;
  pose_t total = 0;
  for (int64_t j = 0; j < p.joints; ++j) {
    const int64_t r = p.region_of_joint[j];
    region_abs[r] += joint_abs[j];
    region_signed[r] += joint_signed[j];
    total += joint_signed[j];
  }
  static_cast<pose_t*>(p.total)[n] = total;
}

}  // namespace

void ig_reduce_cuda(const IgReduceParams& p) {
  if (p.n_samples == 0) return;
  DeviceGuard guard(p.device);
  const auto stream = static_cast<cudaStream_t>(p.stream);
  const int64_t total_elements = p.total_frames * p.joints * p.channels;
  NMM_DISPATCH_POSE(p.pose_dtype, pose_t, [&] {
    if (total_elements > 0) {
      NMM_DISPATCH_STORAGE(p.grad_dtype, grad_t, [&] {
        const auto blocks = static_cast<unsigned>(
            std::min<int64_t>((total_elements + kThreads - 1) / kThreads, int64_t{1} << 20));
        attribution_kernel<pose_t, grad_t><<<blocks, kThreads, 0, stream>>>(p, total_elements);
      });
    }
    joint_sum_kernel<pose_t><<<static_cast<unsigned>(p.n_samples * p.joints), kThreads, 0, stream>>>(p);
    region_sum_kernel<pose_t><<<static_cast<unsigned>((p.n_samples + 127) / 128), 128, 0, stream>>>(p);
  });
  NMM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace nmmfast

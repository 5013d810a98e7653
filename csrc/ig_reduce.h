// ig_reduce: one pass over the step gradients of many samples: quadrature-weighted sum, times
// (x - baseline), per-joint and per-region sums and the completeness total.
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "ig_scale.h"

namespace nmmfast {

struct IgReduceParams {
  const void* grads = nullptr;             // [N * m, t_max, J, C] grad_dtype; row n*m+k
  const void* packed = nullptr;            // [total_frames, J, C] pose_dtype
  const int64_t* offsets = nullptr;        // [N + 1]
  const void* weights = nullptr;           // [N, m] if weights_per_sample else [m]; pose_dtype
  const void* baseline = nullptr;          // see BaselineKind; pose_dtype
  const int64_t* region_of_joint = nullptr;  // [J] values in [0, R)
  void* attributions = nullptr;            // [total_frames, J, C] pose_dtype
  void* joint_abs = nullptr;               // [N, J] pose_dtype: sum over frames, channels of |attr|
  void* joint_signed = nullptr;            // [N, J] pose_dtype: sum over frames, channels of attr
  void* region_abs = nullptr;              // [N, R] pose_dtype
  void* region_signed = nullptr;           // [N, R] pose_dtype
  void* total = nullptr;                   // [N] pose_dtype: sum of all attributions of the sample
  int32_t* nonfinite = nullptr;            // [1] set to 1 when an attribution is NaN or inf
  int64_t n_samples = 0;
  int64_t total_frames = 0;                // offsets[N]
  int64_t n_steps = 0;
  int64_t t_max = 0;
  int64_t joints = 0;
  int64_t channels = 0;
  int64_t n_regions = 0;                   // R
  bool weights_per_sample = false;
  BaselineKind baseline_kind = BaselineKind::Zero;
  DType pose_dtype = DType::Float32;       // also the accumulation type (float32 or float64)
  DType grad_dtype = DType::Float32;
  int32_t device = -1;
  void* stream = nullptr;
  int32_t num_threads = 1;
};

// attr[f] = (x[f] - b[f]) * sum_k w_{n,k} grads[n*m+k, f - offsets[n]] for every real frame f.
void ig_reduce(const IgReduceParams& params);
void ig_reduce_cpu(const IgReduceParams& params);
void ig_reduce_cuda(const IgReduceParams& params);

}  // namespace nmmfast

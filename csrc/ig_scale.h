// ig_scale: builds the Integrated Gradients input batch for many samples x step points in one pass,
// straight from the packed ragged poses.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace nmmfast {

enum class BaselineKind : int32_t {
  Zero = 0,    // baseline is the zero pose; `baseline` is null
  Shared = 1,  // one [J, C] pose for every frame of every sample
  Packed = 2,  // per frame, packed exactly like `packed`
};

struct IgScaleParams {
  const void* packed = nullptr;       // [total_frames, J, C] pose_dtype; N samples back to back
  const int64_t* offsets = nullptr;   // [N + 1] sample n = frames offsets[n] .. offsets[n+1]-1
  const void* alphas = nullptr;       // [N, m] if alphas_per_sample else [m]; pose_dtype
  const void* baseline = nullptr;     // see BaselineKind; pose_dtype
  void* scaled = nullptr;             // [N * m, t_max, J, C] out_dtype; row n*m+k
  bool* mask = nullptr;               // [N * m, t_max] true on real frames
  int32_t* nonfinite = nullptr;       // [1] set to 1 when a computed value is NaN or inf
  int64_t n_samples = 0;              // N
  int64_t n_steps = 0;                // m
  int64_t t_max = 0;                  // padded length, >= the longest sample
  int64_t joints = 0;                 // J
  int64_t channels = 0;               // C
  bool alphas_per_sample = false;
  BaselineKind baseline_kind = BaselineKind::Zero;
  DType pose_dtype = DType::Float32;  // packed, alphas, baseline: float32 or float64
  DType out_dtype = DType::Float32;   // scaled: any DType
  int32_t device = -1;                // -1: host memory; >= 0: CUDA device ordinal
  void* stream = nullptr;             // cudaStream_t for device >= 0 (null: default stream)
  int32_t num_threads = 1;            // host threads for device == -1
};

// Row n*m+k, frame t < len_n: baseline_n[t] + alpha_{n,k} (x_n[t] - baseline_n[t]). Frames
// len_n <= t < t_max repeat the last real frame and are masked out.
void ig_scale(const IgScaleParams& params);
void ig_scale_cpu(const IgScaleParams& params);
void ig_scale_cuda(const IgScaleParams& params);

}  // namespace nmmfast

// Host implementation of ig_scale: rows in parallel, each row written frame by frame; padded frames
// copy the last real frame's output bytes.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "common/parallel.h"
#include "ig_scale.h"

namespace nmmfast {
namespace {

template <typename pose_t, typename out_t>
void scale_rows(const IgScaleParams& p) {
  const int64_t frame_size = p.joints * p.channels;
  const auto* packed = static_cast<const pose_t*>(p.packed);
  const auto* alphas = static_cast<const pose_t*>(p.alphas);
  const auto* baseline = static_cast<const pose_t*>(p.baseline);
  auto* scaled = static_cast<out_t*>(p.scaled);
  std::atomic<int32_t> any_nonfinite{0};

  const int64_t rows = p.n_samples * p.n_steps;
  const int64_t min_rows = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, p.t_max * frame_size));
  parallel_for(rows, min_rows, p.num_threads, [&](int64_t row_begin, int64_t row_end) {
    pose_t check = 0;  // stays 0 unless a value is NaN or inf (x * 0 is NaN for those)
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t n = row / p.n_steps, k = row % p.n_steps;
      const pose_t alpha = alphas[p.alphas_per_sample ? row : k];
      const int64_t start = p.offsets[n], length = p.offsets[n + 1] - start;
      out_t* out_row = scaled + row * p.t_max * frame_size;
      for (int64_t t = 0; t < length; ++t) {
        const pose_t* x = packed + (start + t) * frame_size;
        out_t* out = out_row + t * frame_size;
        if (p.baseline_kind == BaselineKind::Zero) {
          for (int64_t i = 0; i < frame_size; ++i) {
            const pose_t v = alpha * x[i];
            check += v * pose_t(0);
            store(out + i, v);
          }
        } else {
          const pose_t* b = baseline + (p.baseline_kind == BaselineKind::Packed ? (start + t) * frame_size : 0);
          for (int64_t i = 0; i < frame_size; ++i) {
            const pose_t v = b[i] + alpha * (x[i] - b[i]);
            check += v * pose_t(0);
            store(out + i, v);
          }
        }
      }
      const out_t* last = out_row + (length - 1) * frame_size;
      for (int64_t t = length; t < p.t_max; ++t)
        std::memcpy(out_row + t * frame_size, last, sizeof(out_t) * frame_size);
      bool* mask_row = p.mask + row * p.t_max;
      std::fill(mask_row, mask_row + length, true);
      std::fill(mask_row + length, mask_row + p.t_max, false);
    }
    if (check != pose_t(0)) any_nonfinite.store(1);
  });
  if (any_nonfinite.load()) *p.nonfinite = 1;
}

}  // namespace

void ig_scale_cpu(const IgScaleParams& p) {
  NMM_DISPATCH_POSE(p.pose_dtype, pose_t, [&] {
    NMM_DISPATCH_STORAGE(p.out_dtype, out_t, [&] { scale_rows<pose_t, out_t>(p); });
  });
}

}  // namespace nmmfast

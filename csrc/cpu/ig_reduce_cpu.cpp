// Host implementation of ig_reduce. Work is split into (sample, block of frames) items; each item
// streams its m gradient rows contiguously into a block accumulator, writes its attributions and
// keeps private per-joint sums, which are then added in item order so results are deterministic.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "common/parallel.h"
#include "ig_reduce.h"

namespace nmmfast {
namespace {

constexpr int64_t kBlockFrames = 32;

template <typename pose_t, typename grad_t>
void reduce_samples(const IgReduceParams& p) {
  const int64_t N = p.n_samples, m = p.n_steps, J = p.joints, C = p.channels;
  const int64_t frame_size = J * C;
  const auto* grads = static_cast<const grad_t*>(p.grads);
  const auto* packed = static_cast<const pose_t*>(p.packed);
  const auto* weights = static_cast<const pose_t*>(p.weights);
  const auto* baseline = static_cast<const pose_t*>(p.baseline);
  auto* attributions = static_cast<pose_t*>(p.attributions);

  // Items: (sample, first frame of block).
  std::vector<int64_t> item_sample, item_frame;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < p.offsets[n + 1] - p.offsets[n]; t += kBlockFrames) {
      item_sample.push_back(n);
      item_frame.push_back(t);
    }
  const int64_t n_items = static_cast<int64_t>(item_sample.size());
  std::vector<pose_t> item_joint_abs(n_items * J), item_joint_signed(n_items * J);
  std::atomic<int32_t> any_nonfinite{0};

  const int64_t min_items = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, kBlockFrames * frame_size * m));
  parallel_for(n_items, min_items, p.num_threads, [&](int64_t item_begin, int64_t item_end) {
    std::vector<pose_t> weighted(kBlockFrames * frame_size);
    pose_t check = 0;
    for (int64_t item = item_begin; item < item_end; ++item) {
      const int64_t n = item_sample[item], t0 = item_frame[item];
      const int64_t start = p.offsets[n], length = p.offsets[n + 1] - start;
      const int64_t frames = std::min(kBlockFrames, length - t0);
      const int64_t count = frames * frame_size;
      std::fill(weighted.begin(), weighted.begin() + count, pose_t(0));
      for (int64_t k = 0; k < m; ++k) {
        const pose_t w = weights[p.weights_per_sample ? n * m + k : k];
        const grad_t* g = grads + ((n * m + k) * p.t_max + t0) * frame_size;
        pose_t* acc = weighted.data();
        for (int64_t i = 0; i < count; ++i) acc[i] += w * load<pose_t>(g + i);
      }
      pose_t* joint_abs = item_joint_abs.data() + item * J;
      pose_t* joint_signed = item_joint_signed.data() + item * J;
      for (int64_t t = 0; t < frames; ++t) {
        const int64_t frame = start + t0 + t;
        const pose_t* x = packed + frame * frame_size;
        const pose_t* b = p.baseline_kind == BaselineKind::Zero ? nullptr
                          : baseline + (p.baseline_kind == BaselineKind::Packed ? frame * frame_size : 0);
        const pose_t* acc = weighted.data() + t * frame_size;
        pose_t* out = attributions + frame * frame_size;
        for (int64_t j = 0; j < J; ++j) {
          pose_t sum_abs = 0, sum_signed = 0;
          for (int64_t c = 0; c < C; ++c) {
            const int64_t i = j * C + c;
            const pose_t attr = (b ? x[i] - b[i] : x[i]) * acc[i];
            out[i] = attr;
            sum_abs += std::abs(attr);
            sum_signed += attr;
          }
          joint_abs[j] += sum_abs;
          joint_signed[j] += sum_signed;
        }
      }
      for (int64_t j = 0; j < J; ++j) check += joint_abs[j] * pose_t(0);
    }
    if (check != pose_t(0)) any_nonfinite.store(1);
  });
  if (any_nonfinite.load()) *p.nonfinite = 1;

  auto* joint_abs = static_cast<pose_t*>(p.joint_abs);
  auto* joint_signed = static_cast<pose_t*>(p.joint_signed);
  auto* region_abs = static_cast<pose_t*>(p.region_abs);
  auto* region_signed = static_cast<pose_t*>(p.region_signed);
  auto* total = static_cast<pose_t*>(p.total);
  std::fill(joint_abs, joint_abs + N * J, pose_t(0));
  std::fill(joint_signed, joint_signed + N * J, pose_t(0));
  for (int64_t item = 0; item < n_items; ++item) {
    const int64_t n = item_sample[item];
    for (int64_t j = 0; j < J; ++j) {
      joint_abs[n * J + j] += item_joint_abs[item * J + j];
      joint_signed[n * J + j] += item_joint_signed[item * J + j];
    }
  }
  const int64_t R = p.n_regions;
  std::fill(region_abs, region_abs + N * R, pose_t(0));
  std::fill(region_signed, region_signed + N * R, pose_t(0));
  for (int64_t n = 0; n < N; ++n) {
    pose_t sum = 0;
    for (int64_t j = 0; j < J; ++j) {
      const int64_t r = p.region_of_joint[j];
      region_abs[n * R + r] += joint_abs[n * J + j];
      region_signed[n * R + r] += joint_signed[n * J + j];
      sum += joint_signed[n * J + j];
    }
    total[n] = sum;
  }
}

}  // namespace

void ig_reduce_cpu(const IgReduceParams& p) {
  NMM_DISPATCH_POSE(p.pose_dtype, pose_t, [&] {
    NMM_DISPATCH_STORAGE(p.grad_dtype, grad_t, [&] { reduce_samples<pose_t, grad_t>(p); });
  });
}

}  // namespace nmmfast

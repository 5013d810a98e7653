// The host graph-convolution kernels, compiled once per instruction set: graph_conv_<isa>.cpp
// defines NMM_ISA (the namespace), NMM_VECTOR_BYTES (the widest vector register) and
// NMM_VECTOR_REGISTERS (how many there are) and includes this file with its own compiler flags;
// graph_conv_cpu.cpp picks one at run time.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "graph_conv.h"

namespace nmmfast {
namespace NMM_ISA {
namespace {

template <typename T>
struct Vector {
  typedef T type __attribute__((vector_size(NMM_VECTOR_BYTES)));
  static constexpr int width = NMM_VECTOR_BYTES / sizeof(T);
};

// out[m, :NV·width] = init[m, :] + Σ_j a[m, j] · b[j, :] for MB rows, accumulated in registers.
template <typename T, int MB, int NV>
inline void gemm_block(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t inner, T* out,
                       int64_t ldo, const T* init, int64_t ldi) {
  using V = typename Vector<T>::type;
  constexpr int W = Vector<T>::width;
  V acc[MB][NV];
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NV; ++n) {
      if (init)
        std::memcpy(&acc[m][n], init + m * ldi + n * W, sizeof(V));
      else
        acc[m][n] = V{};
    }
  for (int64_t j = 0; j < inner; ++j) {
    V row[NV];
    for (int n = 0; n < NV; ++n) std::memcpy(&row[n], b + j * ldb + n * W, sizeof(V));
    for (int m = 0; m < MB; ++m) {
      const T s = a[m * lda + j];
      for (int n = 0; n < NV; ++n) acc[m][n] += s * row[n];
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NV; ++n) std::memcpy(out + m * ldo + n * W, &acc[m][n], sizeof(V));
}

// Calls gemm_block<T, R, NV> for the runtime R = rows < MB.
template <typename T, int NV, int R>
inline void gemm_rest(int64_t rows, int64_t inner, const T* a, int64_t lda, const T* b,
                      int64_t ldb, T* out, int64_t ldo, const T* init, int64_t ldi) {
  if constexpr (R > 0) {
    if (rows == R) return gemm_block<T, R, NV>(a, lda, b, ldb, inner, out, ldo, init, ldi);
    gemm_rest<T, NV, R - 1>(rows, inner, a, lda, b, ldb, out, ldo, init, ldi);
  }
}

template <typename T, int NV>
inline void gemm_columns(int64_t rows, int64_t inner, const T* a, int64_t lda, const T* b,
                         int64_t ldb, T* out, int64_t ldo, const T* init, int64_t ldi) {
  // rows per block: as many accumulators as leave registers for one row of b and a broadcast
  constexpr int MB = std::min(8, (NMM_VECTOR_REGISTERS - NV - 1) / NV);
  int64_t m = 0;
  for (; m + MB <= rows; m += MB)
    gemm_block<T, MB, NV>(a + m * lda, lda, b, ldb, inner, out + m * ldo, ldo,
                          init ? init + m * ldi : nullptr, ldi);
  gemm_rest<T, NV, MB - 1>(rows - m, inner, a + m * lda, lda, b, ldb, out + m * ldo, ldo,
                           init ? init + m * ldi : nullptr, ldi);
}

// out [rows, cols] = init + a [rows, inner] · b [inner, cols], all row-major (init may be null).
template <typename T>
inline void small_gemm(int64_t rows, int64_t inner, int64_t cols, const T* a, int64_t lda,
                       const T* b, int64_t ldb, T* out, int64_t ldo, const T* init, int64_t ldi) {
  constexpr int W = Vector<T>::width;
  auto at = [&](int64_t col) { return init ? init + col : nullptr; };
  int64_t c = 0;
  for (; c + 4 * W <= cols; c += 4 * W)
    gemm_columns<T, 4>(rows, inner, a, lda, b + c, ldb, out + c, ldo, at(c), ldi);
  if (c + 2 * W <= cols) {
    gemm_columns<T, 2>(rows, inner, a, lda, b + c, ldb, out + c, ldo, at(c), ldi);
    c += 2 * W;
  }
  if (c + W <= cols) {
    gemm_columns<T, 1>(rows, inner, a, lda, b + c, ldb, out + c, ldo, at(c), ldi);
    c += W;
  }
  for (; c < cols; ++c)
    for (int64_t m = 0; m < rows; ++m) {
      T sum = init ? init[m * ldi + c] : T(0);
      for (int64_t j = 0; j < inner; ++j) sum += a[m * lda + j] * b[j * ldb + c];
      out[m * ldo + c] = sum;
    }
}

// Enough frames per thread that starting one pays off.
inline int64_t min_rows_per_thread(int64_t flops_per_row) {
  return std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, flops_per_row));
}

template <typename T>
void forward(const GraphConvParams& p) {
  const int64_t v = p.joints, cin = p.in_channels, kc = p.kernels * p.out_channels,
                c = p.out_channels;
  const auto* x = static_cast<const T*>(p.x);
  const auto* weight_t = static_cast<const T*>(p.weight_t);
  const auto* adjacency = static_cast<const T*>(p.adjacency);
  const auto* bias = static_cast<const T*>(p.bias);
  const auto* residual_weight_t = static_cast<const T*>(p.residual_weight_t);
  const auto* residual_bias = static_cast<const T*>(p.residual_bias);
  auto* out = static_cast<T*>(p.out);
  auto* gcn_out = static_cast<T*>(p.gcn_out);
  const bool residual = p.residual != GraphConvResidual::None;
  const int64_t flops = 2 * v * kc * (cin + v);
  parallel_for(p.rows, min_rows_per_thread(flops), p.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<T> conv(v * kc);  // one frame's 1×1 conv output: [V, K*C] = [V*K, C]
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * v * cin;
      small_gemm<T>(v, cin, kc, xr, cin, weight_t, kc, conv.data(), kc, nullptr, 0);
      T* o = out + r * v * c;
      T* z = residual ? gcn_out + r * v * c : o;
      small_gemm<T>(v, v * p.kernels, c, adjacency, v * p.kernels, conv.data(), c, z, c, bias, c);
      for (int64_t i = 0; i < v * c; ++i) z[i] = z[i] > T(0) ? z[i] : T(0);
      if (p.residual == GraphConvResidual::Identity) {
        for (int64_t i = 0; i < v * c; ++i) {
          const T s = z[i] + xr[i];
          o[i] = s > T(0) ? s : T(0);
        }
      } else if (p.residual == GraphConvResidual::Linear) {
        // o = r + x R^T (the bias broadcast over joints: leading dimension 0), then + z, ReLU
        small_gemm<T>(v, cin, c, xr, cin, residual_weight_t, c, o, c, residual_bias, 0);
        for (int64_t i = 0; i < v * c; ++i) {
          const T s = o[i] + z[i];
          o[i] = s > T(0) ? s : T(0);
        }
      }
    }
  });
}

template <typename T>
void backward(const GraphConvBackwardParams& p) {
  const int64_t v = p.joints, cin = p.in_channels, vk = p.joints * p.kernels,
                c = p.out_channels, kc = p.kernels * p.out_channels;
  const auto* grad_out = static_cast<const T*>(p.grad_out);
  const auto* out = static_cast<const T*>(p.out);
  const auto* gcn_out = static_cast<const T*>(p.gcn_out);
  const auto* weight = static_cast<const T*>(p.weight);
  const auto* adjacency_t = static_cast<const T*>(p.adjacency_t);
  const auto* residual_weight = static_cast<const T*>(p.residual_weight);
  auto* grad_x = static_cast<T*>(p.grad_x);
  const bool residual = p.residual != GraphConvResidual::None;
  const int64_t flops = 2 * v * kc * (cin + v);
  parallel_for(p.rows, min_rows_per_thread(flops), p.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<T> grad_sum(residual ? v * c : 0), grad_z(v * c), grad_conv(vk * c);
    for (int64_t r = begin; r < end; ++r) {
      const T* g = grad_out + r * v * c;
      const T* o = out + r * v * c;
      T* gx = grad_x + r * v * cin;
      if (residual) {
        const T* z = gcn_out + r * v * c;
        for (int64_t i = 0; i < v * c; ++i) {
          grad_sum[i] = o[i] > T(0) ? g[i] : T(0);
          grad_z[i] = z[i] > T(0) ? grad_sum[i] : T(0);
        }
        if (p.residual == GraphConvResidual::Identity)
          std::copy(grad_sum.begin(), grad_sum.end(), gx);
        else
          small_gemm<T>(v, c, cin, grad_sum.data(), c, residual_weight, cin, gx, cin, nullptr, 0);
      } else {
        for (int64_t i = 0; i < v * c; ++i) grad_z[i] = o[i] > T(0) ? g[i] : T(0);
      }
      small_gemm<T>(vk, v, c, adjacency_t, v, grad_z.data(), c, grad_conv.data(), c, nullptr, 0);
      // with a residual, its gradient (already in gx) is the accumulators' start
      small_gemm<T>(v, kc, cin, grad_conv.data(), kc, weight, cin, gx, cin,
                    residual ? gx : nullptr, cin);
    }
  });
}

}  // namespace

void graph_conv_forward(const GraphConvParams& p) {
  if (p.dtype == DType::Float64)
    forward<double>(p);
  else
    forward<float>(p);
}

void graph_conv_backward(const GraphConvBackwardParams& p) {
  if (p.dtype == DType::Float64)
    backward<double>(p);
  else
    backward<float>(p);
}

}  // namespace NMM_ISA
}  // namespace nmmfast

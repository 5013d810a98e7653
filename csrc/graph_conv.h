// graph_conv: the eval-mode (batch-norm-folded) ST-GCN graph convolution fused into one pass per
// frame, on the host: ReLU(A · (x Wᵀ) + bias) forward, and its input gradient backward. The 1×1
// conv's output [V·K, C] of a frame stays in cache between the two products instead of making a
// round trip through memory; the bias starts the aggregation's accumulators and the ReLU runs on
// the frame's output while it is still in cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace nmmfast {

// What a spatial ST-GCN block adds to the graph convolution before its last ReLU.
enum class GraphConvResidual : int32_t {
  None = 0,      // out = the graph convolution
  Identity = 1,  // out = ReLU(graph convolution + x); C_in == C
  Linear = 2,    // out = ReLU(graph convolution + x R^T + r)
};

// Which compiled variant runs: Auto picks the widest this CPU supports.
enum class GraphConvIsa : int32_t { Auto = 0, Generic = 1, Avx2 = 2, Avx512 = 3 };

struct GraphConvParams {
  const void* x = nullptr;            // [rows, V, C_in]
  const void* weight_t = nullptr;     // [C_in, K*C]: the 1×1 conv's weight, transposed
  const void* adjacency = nullptr;    // [V, V*K]: out joint w <- column u*K + k holds A[k, u, w]
  const void* bias = nullptr;         // [V, C]: added after the aggregation
  void* out = nullptr;                // [rows, V, C]
  GraphConvResidual residual = GraphConvResidual::None;
  const void* residual_weight_t = nullptr;  // [C_in, C] (Linear): R transposed
  const void* residual_bias = nullptr;      // [C] (Linear)
  void* gcn_out = nullptr;            // [rows, V, C] with a residual: the graph convolution's own
                                      // (ReLU'd) output, which the backward needs
  int64_t rows = 0;                   // every (sample, frame) pair
  int64_t joints = 0;                 // V
  int64_t in_channels = 0;            // C_in
  int64_t kernels = 0;                // K
  int64_t out_channels = 0;           // C
  DType dtype = DType::Float32;       // float32 or float64, every buffer
  GraphConvIsa isa = GraphConvIsa::Auto;
  int32_t device = -1;                // -1: host memory, the only kind this op has a kernel for
  int32_t num_threads = 1;            // host threads
};

struct GraphConvBackwardParams {
  const void* grad_out = nullptr;     // [rows, V, C]
  const void* out = nullptr;          // [rows, V, C]: the forward's output (its ReLU mask)
  GraphConvResidual residual = GraphConvResidual::None;
  const void* residual_weight = nullptr;  // [C, C_in] (Linear): R
  const void* gcn_out = nullptr;      // [rows, V, C] with a residual: the forward's gcn_out
  const void* weight = nullptr;       // [K*C, C_in]: the 1×1 conv's weight
  const void* adjacency_t = nullptr;  // [V*K, V]: the forward's adjacency, transposed
  void* grad_x = nullptr;             // [rows, V, C_in]
  int64_t rows = 0;
  int64_t joints = 0;
  int64_t in_channels = 0;
  int64_t kernels = 0;
  int64_t out_channels = 0;
  DType dtype = DType::Float32;
  GraphConvIsa isa = GraphConvIsa::Auto;
  int32_t device = -1;
  int32_t num_threads = 1;
};

// Host only: on GPUs the model runs the same function as two PyTorch matmuls
// (graph_conv_reference), so there is no graph_conv_cuda; the dispatcher rejects device memory.
void graph_conv(const GraphConvParams& params);
void graph_conv_backward(const GraphConvBackwardParams& params);
void graph_conv_cpu(const GraphConvParams& params);
void graph_conv_backward_cpu(const GraphConvBackwardParams& params);
// The variants this build has that this CPU can run, widest first ("avx512", "avx2", "generic").
std::vector<std::string> graph_conv_isas();

}  // namespace nmmfast

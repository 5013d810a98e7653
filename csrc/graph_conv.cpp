// Device dispatch for graph_conv and its backward: checks the params struct, then runs the host
// kernel. There is no CUDA kernel (see graph_conv.h), so device memory is an error in every build.
#include "graph_conv.h"

#include <stdexcept>
#include <string>

#include "common/check.h"

namespace nmmfast {
namespace {

[[noreturn]] void no_device_kernel(const char* op) {
#ifdef NMMFAST_WITH_CUDA
  throw std::runtime_error(std::string("nmmfast._C.") + op +
                           ": got CUDA memory but this op has only a host kernel; pass CPU "
                           "tensors (on a GPU, use nmmfast.kernels._reference.graph_conv_reference)");
#else
  throw std::runtime_error(std::string("nmmfast._C.") + op +
                           ": got CUDA memory but nmmfast was built without CUDA kernels, and this "
                           "op has only a host kernel; pass CPU tensors");
#endif
}

template <typename Params>
void check_sizes(const Params& p, const char* op) {
  NMM_CHECK_NONNEGATIVE(op, p.rows);
  NMM_CHECK_POSITIVE(op, p.joints, p.in_channels, p.kernels, p.out_channels);
  NMM_CHECK_DTYPE(op, p.dtype, DType::Float32, DType::Float64);
  NMM_CHECK(p.residual != GraphConvResidual::Identity || p.in_channels == p.out_channels, op,
            "an identity residual needs in_channels == out_channels (C_in == C), got ",
            p.in_channels, " and ", p.out_channels);
  NMM_CHECK(p.residual == GraphConvResidual::None || p.gcn_out, op,
            "a residual needs gcn_out [rows, V, C], the graph convolution's own output buffer");
}

}  // namespace

void graph_conv(const GraphConvParams& p) {
  constexpr const char* op = "graph_conv";
  check_sizes(p, op);
  NMM_CHECK(p.residual != GraphConvResidual::Linear || (p.residual_weight_t && p.residual_bias),
            op, "a linear residual needs residual_weight_t [C_in, C] and residual_bias [C]");
  if (p.rows == 0) return;
  NMM_CHECK(p.x && p.weight_t && p.adjacency && p.bias && p.out, op,
            "x, weight_t, adjacency, bias and out must not be null when rows > 0");
  if (p.device < 0) return graph_conv_cpu(p);
  no_device_kernel(op);
}

void graph_conv_backward(const GraphConvBackwardParams& p) {
  constexpr const char* op = "graph_conv_backward";
  check_sizes(p, op);
  NMM_CHECK(p.residual != GraphConvResidual::Linear || p.residual_weight, op,
            "a linear residual needs residual_weight [C, C_in]");
  if (p.rows == 0) return;
  NMM_CHECK(p.grad_out && p.out && p.weight && p.adjacency_t && p.grad_x, op,
            "grad_out, out, weight, adjacency_t and grad_x must not be null when rows > 0");
  if (p.device < 0) return graph_conv_backward_cpu(p);
  no_device_kernel(op);
}

}  // namespace nmmfast

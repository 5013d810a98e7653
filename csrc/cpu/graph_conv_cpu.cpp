// Host dispatch for graph_conv: checks the arguments, then runs the widest kernel this CPU has.
#include <stdexcept>
#include <string>

#include "graph_conv.h"

namespace nmmfast {
namespace avx512 {
void graph_conv_forward(const GraphConvParams& params);
void graph_conv_backward(const GraphConvBackwardParams& params);
}  // namespace avx512
namespace avx2 {
void graph_conv_forward(const GraphConvParams& params);
void graph_conv_backward(const GraphConvBackwardParams& params);
}  // namespace avx2
namespace generic {
void graph_conv_forward(const GraphConvParams& params);
void graph_conv_backward(const GraphConvBackwardParams& params);
}  // namespace generic

namespace {

bool cpu_has(GraphConvIsa isa) {
  switch (isa) {
    case GraphConvIsa::Generic: return true;
#if defined(NMMFAST_X86_KERNELS)
    case GraphConvIsa::Avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GraphConvIsa::Avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
#endif
    default: return false;
  }
}

GraphConvIsa resolve(GraphConvIsa requested, const char* op) {
  static const GraphConvIsa widest = [] {
    for (auto isa : {GraphConvIsa::Avx512, GraphConvIsa::Avx2})
      if (cpu_has(isa)) return isa;
    return GraphConvIsa::Generic;
  }();
  if (requested == GraphConvIsa::Auto) return widest;
  if (!cpu_has(requested))
    throw std::invalid_argument(std::string("nmmfast._C.") + op +
                                ": the requested instruction set is not built or not on this CPU");
  return requested;
}

const char* isa_name(GraphConvIsa isa) {
  switch (isa) {
    case GraphConvIsa::Avx512: return "avx512";
    case GraphConvIsa::Avx2: return "avx2";
    default: return "generic";
  }
}

void check(int64_t rows, int64_t joints, int64_t in_channels, int64_t kernels,
           int64_t out_channels, DType dtype, const char* op) {
  if (rows < 0 || joints <= 0 || in_channels <= 0 || kernels <= 0 || out_channels <= 0)
    throw std::invalid_argument(std::string("nmmfast._C.") + op +
                                ": rows must be >= 0 and joints, channels, kernels positive");
  if (dtype != DType::Float32 && dtype != DType::Float64)
    throw std::invalid_argument(std::string("nmmfast._C.") + op +
                                ": float32 or float64 only, got " + dtype_name(dtype));
}

void check_residual(GraphConvResidual residual, int64_t in_channels, int64_t out_channels,
                    bool buffers, const char* op) {
  if (residual == GraphConvResidual::Identity && in_channels != out_channels)
    throw std::invalid_argument(std::string("nmmfast._C.") + op +
                                ": an identity residual needs C_in == C");
  if (residual != GraphConvResidual::None && !buffers)
    throw std::invalid_argument(std::string("nmmfast._C.") + op +
                                ": a residual needs its weights and the graph convolution's "
                                "own output buffer");
}

}  // namespace

std::vector<std::string> graph_conv_isas() {
  std::vector<std::string> names;
  for (auto isa : {GraphConvIsa::Avx512, GraphConvIsa::Avx2, GraphConvIsa::Generic})
    if (cpu_has(isa)) names.emplace_back(isa_name(isa));
  return names;
}

void graph_conv_forward(const GraphConvParams& p) {
  check(p.rows, p.joints, p.in_channels, p.kernels, p.out_channels, p.dtype, "graph_conv");
  check_residual(p.residual, p.in_channels, p.out_channels,
                 p.gcn_out && (p.residual != GraphConvResidual::Linear ||
                               (p.residual_weight_t && p.residual_bias)),
                 "graph_conv");
  if (p.rows == 0) return;
  switch (resolve(p.isa, "graph_conv")) {
#if defined(NMMFAST_X86_KERNELS)
    case GraphConvIsa::Avx512: return avx512::graph_conv_forward(p);
    case GraphConvIsa::Avx2: return avx2::graph_conv_forward(p);
#endif
    default: return generic::graph_conv_forward(p);
  }
}

void graph_conv_backward(const GraphConvBackwardParams& p) {
  check(p.rows, p.joints, p.in_channels, p.kernels, p.out_channels, p.dtype,
        "graph_conv_backward");
  check_residual(p.residual, p.in_channels, p.out_channels,
                 p.gcn_out && (p.residual != GraphConvResidual::Linear || p.residual_weight),
                 "graph_conv_backward");
  if (p.rows == 0) return;
  switch (resolve(p.isa, "graph_conv_backward")) {
#if defined(NMMFAST_X86_KERNELS)
    case GraphConvIsa::Avx512: return avx512::graph_conv_backward(p);
    case GraphConvIsa::Avx2: return avx2::graph_conv_backward(p);
#endif
    default: return generic::graph_conv_backward(p);
  }
}

}  // namespace nmmfast

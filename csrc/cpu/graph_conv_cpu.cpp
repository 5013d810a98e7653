// Host implementation of graph_conv: picks the compiled variant (graph_conv_kernel.h built per
// instruction set) that this CPU runs, the widest unless the caller asks for one. The arguments are
// checked by the dispatcher, graph_conv.cpp.
#include "common/check.h"
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

const char* isa_name(GraphConvIsa isa) {
  switch (isa) {
    case GraphConvIsa::Avx512: return "avx512";
    case GraphConvIsa::Avx2: return "avx2";
    default: return "generic";
  }
}

GraphConvIsa resolve(GraphConvIsa requested, const char* op) {
  static const GraphConvIsa widest = [] {
    for (auto isa : {GraphConvIsa::Avx512, GraphConvIsa::Avx2})
      if (cpu_has(isa)) return isa;
    return GraphConvIsa::Generic;
  }();
  if (requested == GraphConvIsa::Auto) return widest;
  NMM_CHECK(cpu_has(requested), op, "isa ", isa_name(requested),
            " is not built or not supported by this CPU (see graph_conv_isas())");
  return requested;
}

}  // namespace

std::vector<std::string> graph_conv_isas() {
  std::vector<std::string> names;
  for (auto isa : {GraphConvIsa::Avx512, GraphConvIsa::Avx2, GraphConvIsa::Generic})
    if (cpu_has(isa)) names.emplace_back(isa_name(isa));
  return names;
}

void graph_conv_cpu(const GraphConvParams& p) {
  switch (resolve(p.isa, "graph_conv")) {
#if defined(NMMFAST_X86_KERNELS)
    case GraphConvIsa::Avx512: return avx512::graph_conv_forward(p);
    case GraphConvIsa::Avx2: return avx2::graph_conv_forward(p);
#endif
    default: return generic::graph_conv_forward(p);
  }
}

void graph_conv_backward_cpu(const GraphConvBackwardParams& p) {
  switch (resolve(p.isa, "graph_conv_backward")) {
#if defined(NMMFAST_X86_KERNELS)
    case GraphConvIsa::Avx512: return avx512::graph_conv_backward(p);
    case GraphConvIsa::Avx2: return avx2::graph_conv_backward(p);
#endif
    default: return generic::graph_conv_backward(p);
  }
}

}  // namespace nmmfast

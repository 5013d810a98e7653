// The one Python binding file of nmmfast._C, declarative only: enums, the params structs (one
// field list each), one m.def per op with a one-line doc, and build_info(). Checks and logic live
// in the op files; the params structs are documented in their headers.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "build_info.h"
#include "graph_conv.h"
#include "ig_reduce.h"
#include "ig_scale.h"

namespace py = pybind11;

namespace {

template <typename T, typename M>
struct Field {
  const char* name;
  M T::*member;
};
template <typename T, typename M>
Field<T, M> field(const char* name, M T::*member) {
  return {name, member};
}

// Pointers cross the boundary as integers (tensor.data_ptr()); 0 means null.
template <typename T, typename P>
void def_field(py::class_<T>& cls, const Field<T, P*>& f) {
  cls.def_property(
      f.name, [m = f.member](const T& self) { return reinterpret_cast<uintptr_t>(self.*m); },
      [m = f.member](T& self, uintptr_t value) { self.*m = reinterpret_cast<P*>(value); });
}
template <typename T, typename M>
void def_field(py::class_<T>& cls, const Field<T, M>& f) {
  cls.def_readwrite(f.name, f.member);
}

// A default-constructible params struct with every listed field readable and writable.
template <typename T, typename... Fields>
void bind_params(py::module_& m, const char* name, const char* doc, const Fields&... fields) {
  py::class_<T> cls(m, name, doc);
  cls.def(py::init<>());
  (def_field(cls, fields), ...);
}

template <typename E>
void bind_enum(py::module_& m, const char* name, std::initializer_list<std::pair<const char*, E>> values) {
  py::enum_<E> cls(m, name);
  for (const auto& [value_name, value] : values) cls.value(value_name, value);
}

// An op takes its params struct and runs without the GIL, so other Python threads keep going.
template <typename Params>
void def_op(py::module_& m, const char* name, void (*op)(const Params&), const char* doc) {
  m.def(name, op, py::arg("params"), py::call_guard<py::gil_scoped_release>(), doc);
}

}  // namespace

// FIELD(name) inside a `using P = <params struct>` scope: the field's Python name is its C++ name.
#define FIELD(name) field(#name, &P::name)

PYBIND11_MODULE(_C, m) {
  using namespace nmmfast;
  m.doc() = "nmmfast compiled core: Integrated Gradients and graph-convolution kernels on raw buffers";

  bind_enum<DType>(m, "DType", {{"float32", DType::Float32}, {"float16", DType::Float16},
                                {"bfloat16", DType::BFloat16}, {"float64", DType::Float64}});
  bind_enum<BaselineKind>(m, "BaselineKind", {{"zero", BaselineKind::Zero},
                                              {"shared", BaselineKind::Shared},
                                              {"packed", BaselineKind::Packed}});
  bind_enum<GraphConvIsa>(m, "GraphConvIsa", {{"auto", GraphConvIsa::Auto},
                                              {"generic", GraphConvIsa::Generic},
                                              {"avx2", GraphConvIsa::Avx2},
                                              {"avx512", GraphConvIsa::Avx512}});
  bind_enum<GraphConvResidual>(m, "GraphConvResidual", {{"none", GraphConvResidual::None},
                                                        {"identity", GraphConvResidual::Identity},
                                                        {"linear", GraphConvResidual::Linear}});

  {
    using P = IgScaleParams;
    bind_params<P>(m, "IgScaleParams", "Arguments of ig_scale (csrc/ig_scale.h).",
                   FIELD(packed), FIELD(offsets), FIELD(alphas), FIELD(baseline), FIELD(scaled),
                   FIELD(mask), FIELD(nonfinite), FIELD(n_samples), FIELD(n_steps), FIELD(t_max),
                   FIELD(joints), FIELD(channels), FIELD(alphas_per_sample), FIELD(baseline_kind),
                   FIELD(pose_dtype), FIELD(out_dtype), FIELD(device), FIELD(stream),
                   FIELD(num_threads));
  }
  {
    using P = IgReduceParams;
    bind_params<P>(m, "IgReduceParams", "Arguments of ig_reduce (csrc/ig_reduce.h).",
                   FIELD(grads), FIELD(packed), FIELD(offsets), FIELD(weights), FIELD(baseline),
                   FIELD(region_of_joint), FIELD(attributions), FIELD(joint_abs),
                   FIELD(joint_signed), FIELD(region_abs), FIELD(region_signed), FIELD(total),
                   FIELD(nonfinite), FIELD(n_samples), FIELD(total_frames), FIELD(n_steps),
                   FIELD(t_max), FIELD(joints), FIELD(channels), FIELD(n_regions),
                   FIELD(weights_per_sample), FIELD(baseline_kind), FIELD(pose_dtype),
                   FIELD(grad_dtype), FIELD(device), FIELD(stream), FIELD(num_threads));
  }
  {
    using P = GraphConvParams;
    bind_params<P>(m, "GraphConvParams", "Arguments of graph_conv (csrc/graph_conv.h).",
                   FIELD(x), FIELD(weight_t), FIELD(adjacency), FIELD(bias), FIELD(out),
                   FIELD(residual), FIELD(residual_weight_t), FIELD(residual_bias),
                   FIELD(gcn_out), FIELD(rows), FIELD(joints), FIELD(in_channels),
                   FIELD(kernels), FIELD(out_channels), FIELD(dtype), FIELD(isa), FIELD(device),
                   FIELD(num_threads));
  }
  {
    using P = GraphConvBackwardParams;
    bind_params<P>(m, "GraphConvBackwardParams",
                   "Arguments of graph_conv_backward (csrc/graph_conv.h).",
                   FIELD(grad_out), FIELD(out), FIELD(residual), FIELD(residual_weight),
                   FIELD(gcn_out), FIELD(weight), FIELD(adjacency_t), FIELD(grad_x), FIELD(rows),
                   FIELD(joints), FIELD(in_channels), FIELD(kernels), FIELD(out_channels),
                   FIELD(dtype), FIELD(isa), FIELD(device), FIELD(num_threads));
  }

  def_op(m, "ig_scale", &ig_scale,
         "Build the IG step batch [N*m, t_max, J, C] and mask from packed ragged poses.");
  def_op(m, "ig_reduce", &ig_reduce,
         "Weighted step-gradient sum x (input - baseline), with joint/region/total sums.");
  def_op(m, "graph_conv", &graph_conv,
         "Folded ST-GCN graph convolution on the host: ReLU(A (x W^T) + bias) per frame, "
         "optionally with a spatial block's residual and last ReLU.");
  def_op(m, "graph_conv_backward", &graph_conv_backward,
         "Input gradient of graph_conv, given the forward's output.");
  m.def("graph_conv_isas", &graph_conv_isas,
        "graph_conv variants this build has that this CPU runs, widest (the default) first.");
  m.def("cuda_device_count", &cuda_device_count,
        "GPUs the CUDA runtime sees now (0 without a driver).");
  m.def("build_info", [] {
    const BuildInfo info = build_info();
    py::dict out;
    out["version"] = info.version;
    out["cuda_compiled"] = info.cuda_compiled;
    out["cuda_architectures"] = info.cuda_architectures;
    out["cuda_compiler"] = info.cuda_compiler;
    return out;
  }, "Version, whether the CUDA kernels were compiled, and for which architectures.");
}

// The one Python binding file of nmmfast._C: parameter structs, one m.def per op, build_info.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>

#include "graph_conv.h"
#include "ig_reduce.h"
#include "ig_scale.h"

namespace py = pybind11;

namespace nmmfast {
#ifdef NMMFAST_WITH_CUDA
int cuda_device_count();
#else
int cuda_device_count() { return 0; }
#endif

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Float64: return "float64";
  }
  return "unknown";
}
}  // namespace nmmfast

namespace {

// Pointers cross the boundary as integers (data_ptr / ctypes.data); 0 means null.
template <typename T>
void def_pointer(py::class_<T>& cls, const char* name, const void* T::*member) {
  cls.def_property(
      name, [member](const T& self) { return reinterpret_cast<uintptr_t>(self.*member); },
      [member](T& self, uintptr_t value) { self.*member = reinterpret_cast<const void*>(value); });
}
template <typename T, typename P>
void def_pointer(py::class_<T>& cls, const char* name, P* T::*member) {
  cls.def_property(
      name, [member](const T& self) { return reinterpret_cast<uintptr_t>(self.*member); },
      [member](T& self, uintptr_t value) { self.*member = reinterpret_cast<P*>(value); });
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  using namespace nmmfast;
  m.doc() = "nmmfast compiled core: Integrated Gradients kernels on raw buffers (CPU and CUDA)";

  py::enum_<DType>(m, "DType")
      .value("float32", DType::Float32)
      .value("float16", DType::Float16)
      .value("bfloat16", DType::BFloat16)
      .value("float64", DType::Float64);
  py::enum_<BaselineKind>(m, "BaselineKind")
      .value("zero", BaselineKind::Zero)
      .value("shared", BaselineKind::Shared)
      .value("packed", BaselineKind::Packed);

  py::class_<IgScaleParams> scale(m, "IgScaleParams");
  scale.def(py::init<>());
  def_pointer(scale, "packed", &IgScaleParams::packed);
  def_pointer(scale, "offsets", &IgScaleParams::offsets);
  def_pointer(scale, "alphas", &IgScaleParams::alphas);
  def_pointer(scale, "baseline", &IgScaleParams::baseline);
  def_pointer(scale, "scaled", &IgScaleParams::scaled);
  def_pointer(scale, "mask", &IgScaleParams::mask);
  def_pointer(scale, "nonfinite", &IgScaleParams::nonfinite);
  def_pointer(scale, "stream", &IgScaleParams::stream);
  scale.def_readwrite("n_samples", &IgScaleParams::n_samples)
      .def_readwrite("n_steps", &IgScaleParams::n_steps)
      .def_readwrite("t_max", &IgScaleParams::t_max)
      .def_readwrite("joints", &IgScaleParams::joints)
      .def_readwrite("channels", &IgScaleParams::channels)
      .def_readwrite("alphas_per_sample", &IgScaleParams::alphas_per_sample)
      .def_readwrite("baseline_kind", &IgScaleParams::baseline_kind)
      .def_readwrite("pose_dtype", &IgScaleParams::pose_dtype)
      .def_readwrite("out_dtype", &IgScaleParams::out_dtype)
      .def_readwrite("device", &IgScaleParams::device)
      .def_readwrite("num_threads", &IgScaleParams::num_threads);

  py::class_<IgReduceParams> reduce(m, "IgReduceParams");
  reduce.def(py::init<>());
  def_pointer(reduce, "grads", &IgReduceParams::grads);
  def_pointer(reduce, "packed", &IgReduceParams::packed);
  def_pointer(reduce, "offsets", &IgReduceParams::offsets);
  def_pointer(reduce, "weights", &IgReduceParams::weights);
  def_pointer(reduce, "baseline", &IgReduceParams::baseline);
  def_pointer(reduce, "region_of_joint", &IgReduceParams::region_of_joint);
  def_pointer(reduce, "attributions", &IgReduceParams::attributions);
  def_pointer(reduce, "joint_abs", &IgReduceParams::joint_abs);
  def_pointer(reduce, "joint_signed", &IgReduceParams::joint_signed);
  def_pointer(reduce, "region_abs", &IgReduceParams::region_abs);
  def_pointer(reduce, "region_signed", &IgReduceParams::region_signed);
  def_pointer(reduce, "total", &IgReduceParams::total);
  def_pointer(reduce, "nonfinite", &IgReduceParams::nonfinite);
  def_pointer(reduce, "stream", &IgReduceParams::stream);
  reduce.def_readwrite("n_samples", &IgReduceParams::n_samples)
      .def_readwrite("total_frames", &IgReduceParams::total_frames)
      .def_readwrite("n_steps", &IgReduceParams::n_steps)
      .def_readwrite("t_max", &IgReduceParams::t_max)
      .def_readwrite("joints", &IgReduceParams::joints)
      .def_readwrite("channels", &IgReduceParams::channels)
      .def_readwrite("n_regions", &IgReduceParams::n_regions)
      .def_readwrite("weights_per_sample", &IgReduceParams::weights_per_sample)
      .def_readwrite("baseline_kind", &IgReduceParams::baseline_kind)
      .def_readwrite("pose_dtype", &IgReduceParams::pose_dtype)
      .def_readwrite("grad_dtype", &IgReduceParams::grad_dtype)
      .def_readwrite("device", &IgReduceParams::device)
      .def_readwrite("num_threads", &IgReduceParams::num_threads);

  py::enum_<GraphConvIsa>(m, "GraphConvIsa")
      .value("auto", GraphConvIsa::Auto)
      .value("generic", GraphConvIsa::Generic)
      .value("avx2", GraphConvIsa::Avx2)
      .value("avx512", GraphConvIsa::Avx512);
  py::enum_<GraphConvResidual>(m, "GraphConvResidual")
      .value("none", GraphConvResidual::None)
      .value("identity", GraphConvResidual::Identity)
      .value("linear", GraphConvResidual::Linear);
  py::class_<GraphConvParams> conv(m, "GraphConvParams");
  conv.def(py::init<>());
  def_pointer(conv, "x", &GraphConvParams::x);
  def_pointer(conv, "weight_t", &GraphConvParams::weight_t);
  def_pointer(conv, "adjacency", &GraphConvParams::adjacency);
  def_pointer(conv, "bias", &GraphConvParams::bias);
  def_pointer(conv, "out", &GraphConvParams::out);
  def_pointer(conv, "residual_weight_t", &GraphConvParams::residual_weight_t);
  def_pointer(conv, "residual_bias", &GraphConvParams::residual_bias);
  def_pointer(conv, "gcn_out", &GraphConvParams::gcn_out);
  conv.def_readwrite("residual", &GraphConvParams::residual)
      .def_readwrite("rows", &GraphConvParams::rows)
      .def_readwrite("joints", &GraphConvParams::joints)
      .def_readwrite("in_channels", &GraphConvParams::in_channels)
      .def_readwrite("kernels", &GraphConvParams::kernels)
      .def_readwrite("out_channels", &GraphConvParams::out_channels)
      .def_readwrite("dtype", &GraphConvParams::dtype)
      .def_readwrite("isa", &GraphConvParams::isa)
      .def_readwrite("num_threads", &GraphConvParams::num_threads);

  py::class_<GraphConvBackwardParams> conv_back(m, "GraphConvBackwardParams");
  conv_back.def(py::init<>());
  def_pointer(conv_back, "grad_out", &GraphConvBackwardParams::grad_out);
  def_pointer(conv_back, "out", &GraphConvBackwardParams::out);
  def_pointer(conv_back, "weight", &GraphConvBackwardParams::weight);
  def_pointer(conv_back, "adjacency_t", &GraphConvBackwardParams::adjacency_t);
  def_pointer(conv_back, "grad_x", &GraphConvBackwardParams::grad_x);
  def_pointer(conv_back, "residual_weight", &GraphConvBackwardParams::residual_weight);
  def_pointer(conv_back, "gcn_out", &GraphConvBackwardParams::gcn_out);
  conv_back.def_readwrite("residual", &GraphConvBackwardParams::residual)
      .def_readwrite("rows", &GraphConvBackwardParams::rows)
      .def_readwrite("joints", &GraphConvBackwardParams::joints)
      .def_readwrite("in_channels", &GraphConvBackwardParams::in_channels)
      .def_readwrite("kernels", &GraphConvBackwardParams::kernels)
      .def_readwrite("out_channels", &GraphConvBackwardParams::out_channels)
      .def_readwrite("dtype", &GraphConvBackwardParams::dtype)
      .def_readwrite("isa", &GraphConvBackwardParams::isa)
      .def_readwrite("num_threads", &GraphConvBackwardParams::num_threads);

  m.def("graph_conv", &graph_conv_forward, py::arg("params"),
        py::call_guard<py::gil_scoped_release>(),
        "Folded ST-GCN graph convolution on the host: ReLU(A (x W^T) + bias) per frame, "
        "optionally with a spatial block's residual and last ReLU.");
  m.def("graph_conv_backward", &graph_conv_backward, py::arg("params"),
        py::call_guard<py::gil_scoped_release>(),
        "Input gradient of graph_conv, given the forward's output.");
  m.def("graph_conv_isas", &graph_conv_isas,
        "graph_conv variants this build has that this CPU runs, widest (the default) first.");
  m.def("ig_scale", &ig_scale, py::arg("params"), py::call_guard<py::gil_scoped_release>(),
        "Build the IG step batch [N*m, t_max, J, C] and mask from packed ragged poses.");
  m.def("ig_reduce", &ig_reduce, py::arg("params"), py::call_guard<py::gil_scoped_release>(),
        "Weighted step-gradient sum x (input - baseline), with joint/region/total sums.");
  m.def("cuda_device_count", &cuda_device_count, "GPUs the CUDA runtime sees now (0 without a driver).");
  m.def("build_info", [] {
    py::dict info;
    info["version"] = NMMFAST_VERSION;
#ifdef NMMFAST_WITH_CUDA
    info["cuda_compiled"] = true;
    info["cuda_architectures"] = NMMFAST_CUDA_ARCHS;
    info["cuda_compiler"] = NMMFAST_CUDA_COMPILER_VERSION;
#else
    info["cuda_compiled"] = false;
    info["cuda_architectures"] = "";
    info["cuda_compiler"] = "";
#endif
    return info;
  }, "Version, whether the CUDA kernels were compiled, and for which architectures.");
}

// The host graph-convolution kernels for generic (compiler flags in CMakeLists.txt).
#define NMM_ISA generic
#define NMM_VECTOR_BYTES 16
#define NMM_VECTOR_REGISTERS 16
#include "cpu/graph_conv_kernel.h"

// The host graph-convolution kernels for avx2 (compiler flags in CMakeLists.txt).
#define NMM_ISA avx2
#define NMM_VECTOR_BYTES 32
#define NMM_VECTOR_REGISTERS 16
#include "cpu/graph_conv_kernel.h"

// The host graph-convolution kernels for avx512 (compiler flags in CMakeLists.txt).
#define NMM_ISA avx512
#define NMM_VECTOR_BYTES 64
#define NMM_VECTOR_REGISTERS 32
#include "cpu/graph_conv_kernel.h"

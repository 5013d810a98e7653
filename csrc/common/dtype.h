// Element types the kernels read and write, and exact float <-> half / bfloat16 conversions that give
// the same bits as PyTorch's casts (round to nearest even) on the host and on the device.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>

#if defined(__CUDACC__)
#define NMM_HD __host__ __device__ __forceinline__
#else
#define NMM_HD inline
#endif

namespace nmmfast {

// Values match the dtype codes used by the wrappers in nmmfast/kernels/.
enum class DType : int32_t { Float32 = 0, Float16 = 1, BFloat16 = 2, Float64 = 3 };

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Float64: return "float64";
  }
  return "unknown";
}

// Storage-only 16-bit types: bit patterns, converted through float.
struct half_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

NMM_HD uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof(bits));
  return bits;
}

NMM_HD float bits_float(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

// Round-to-nearest-even float -> binary16, subnormals and overflow to inf included. The subnormal
// branch lets the FPU do the rounding by adding a magic constant, so it must not be built with
// flush-to-zero or fast-math.
NMM_HD uint16_t float_to_half_bits(float value) {
  uint32_t bits = float_bits(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint16_t out;
  if (bits >= (127u + 16u) << 23) {  // |value| >= 65536, inf or nan
    out = bits > (255u << 23) ? 0x7e00 : 0x7c00;
  } else if (bits < (113u << 23)) {  // result is subnormal or zero
    const uint32_t magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    const float shifted = bits_float(bits) + bits_float(magic_bits);
    out = static_cast<uint16_t>(float_bits(shifted) - magic_bits);
  } else {
    const uint32_t mantissa_odd = (bits >> 13) & 1u;
    bits += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu;
    bits += mantissa_odd;
    out = static_cast<uint16_t>(bits >> 13);
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

NMM_HD float half_bits_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

NMM_HD uint16_t float_to_bf16_bits(float value) {
  const uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

NMM_HD float bf16_bits_to_float(uint16_t bf16) { return bits_float(static_cast<uint32_t>(bf16) << 16); }

// load<T>(ptr) -> compute type; store(ptr, value) rounds once into the storage type.
template <typename compute_t>
NMM_HD compute_t load(const float* p) { return static_cast<compute_t>(*p); }
template <typename compute_t>
NMM_HD compute_t load(const double* p) { return static_cast<compute_t>(*p); }
template <typename compute_t>
NMM_HD compute_t load(const half_t* p) { return static_cast<compute_t>(half_bits_to_float(p->bits)); }
template <typename compute_t>
NMM_HD compute_t load(const bf16_t* p) { return static_cast<compute_t>(bf16_bits_to_float(p->bits)); }

template <typename compute_t>
NMM_HD void store(float* p, compute_t v) { *p = static_cast<float>(v); }
template <typename compute_t>
NMM_HD void store(double* p, compute_t v) { *p = static_cast<double>(v); }
template <typename compute_t>
NMM_HD void store(half_t* p, compute_t v) { p->bits = float_to_half_bits(static_cast<float>(v)); }
template <typename compute_t>
NMM_HD void store(bf16_t* p, compute_t v) { p->bits = float_to_bf16_bits(static_cast<float>(v)); }

}  // namespace nmmfast

// Calls body with `using scalar_t = <storage type of dtype>` in scope.
#define NMM_DISPATCH_STORAGE(dtype, name, ...)                                              \
  [&] {                                                                                     \
    switch (dtype) {                                                                        \
      case ::nmmfast::DType::Float32: { using name = float; return __VA_ARGS__(); }         \
      case ::nmmfast::DType::Float64: { using name = double; return __VA_ARGS__(); }        \
      case ::nmmfast::DType::Float16: { using name = ::nmmfast::half_t; return __VA_ARGS__(); } \
      case ::nmmfast::DType::BFloat16: { using name = ::nmmfast::bf16_t; return __VA_ARGS__(); } \
    }                                                                                       \
    throw std::invalid_argument("nmmfast: unknown dtype code");                            \
  }()

// Input poses are float32 or float64; the compute type follows them.
#define NMM_DISPATCH_POSE(dtype, name, ...)                                                 \
  [&] {                                                                                     \
    switch (dtype) {                                                                        \
      case ::nmmfast::DType::Float32: { using name = float; return __VA_ARGS__(); }         \
      case ::nmmfast::DType::Float64: { using name = double; return __VA_ARGS__(); }        \
      default: break;                                                                       \
    }                                                                                       \
    throw std::invalid_argument("nmmfast: poses must be float32 or float64");              \
  }()
